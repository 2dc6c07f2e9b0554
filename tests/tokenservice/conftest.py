"""The token service end to end: a real gateway process, a real SQLite file, a real upstream.

Most tests share one gateway for the whole session (``service``) with two workers, so
refreshes race across processes as they would in production; each test uses its own sessions.
Tests that need other settings start their own (``start_service``, or a module fixture calling
``launch``). Users files are written with cheap argon2 parameters: the gateway's dummy hash
follows the file's parameters, so timing parity still holds.

Every password and token a test sends or receives is recorded (``SECRETS``); stopping a gateway
fails if any of them appears in what it printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from argon2 import PasswordHasher

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.upstream import ServerThread, Upstream
from tests.waiting import eventually

PUBLIC_URL = "http://gateway.test"
CORS_ORIGIN = "http://app.test"
CHEAP = PasswordHasher(time_cost=1, memory_cost=16 * 1024, parallelism=1)

USERS = {
    "alice": ("alice-correct-horse", ["orders:read", "orders:write"], {"tenant": "acme"}),
    "bob": ("bob-battery-staple", ["orders:read"], {}),
    "carol": ("carol-tr0ub4dor", ["orders:read"], {}),
    "dave": ("dave-s3cret-pass", ["orders:read"], {}),
    "erin": ("erin-passphrase-1", ["orders:read"], {}),
    "frank": ("frank-passphrase-2", ["orders:read"], {}),
}
DISABLED = {"mallory": "mallory-pass-word"}
PASSWORDS = [password for password, _, _ in USERS.values()] + list(DISABLED.values())


def write_users(path: Path) -> None:
    """The users file every test gateway reads."""
    users: dict[str, Any] = {
        name: {"password_hash": CHEAP.hash(password), "scopes": scopes, "claims": claims}
        for name, (password, scopes, claims) in USERS.items()
    }
    for name, password in DISABLED.items():
        users[name] = {"password_hash": CHEAP.hash(password), "disabled": True}
    path.write_text(yaml.safe_dump({"users": users}))
    path.chmod(0o600)


def config_text(
    upstream_port: int,
    *,
    public_url: str = PUBLIC_URL,
    trusted_proxies: Sequence[str] = (),
    store: str = "sqlite:///./data/gateway.db",
    users: Mapping[str, Any] | None = None,
    **tokens: Any,
) -> str:
    """A gateway configuration; ``tokens`` overrides keys of the ``tokens:`` section."""
    settings = {
        "issuer": PUBLIC_URL,
        "audience": "api",
        "keys": "./keys",
        "access_ttl": "5m",
        "refresh_ttl": "1h",
        "refresh_idle_ttl": "30m",
        "refresh_reuse_grace": "2s",
        "leeway": 0,
        **tokens,
    }
    return config_yaml(
        server={
            "public_url": public_url,
            "trusted_proxies": list(trusted_proxies),
            "admin": {"port": free_port()},
        },
        tokens=settings,
        store=store,
        users={"file": "./users.yaml", "max_failures": 50} if users is None else users,
        cors={"allow_origins": [CORS_ORIGIN], "allow_credentials": True},
        routes=[
            route("orders", "/orders", f"http://127.0.0.1:{upstream_port}", scopes=["orders:read"])
        ],
    )


@dataclass
class Service:
    """One gateway process and its folder; ``restart`` keeps the folder (keys, store, users)."""

    folder: Path
    config_path: Path
    workers: int
    gateway: GatewayProcess
    outputs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    def output(self) -> str:
        """Everything every process of this service printed so far (stdout and stderr)."""
        return "".join(self.outputs) + _printed(self.gateway)

    def restart(self) -> None:
        self.gateway.stop()
        self.outputs.append(_printed(self.gateway))
        self.gateway = _launch(self.config_path, self.workers)

    def stop(self) -> None:
        """Stop the gateway, and fail if it ever printed a secret the tests used."""
        self.gateway.stop()
        leaked = leaked_secrets(self.output())
        assert not leaked, f"the gateway printed {len(leaked)} secrets"


def _printed(gateway: GatewayProcess) -> str:
    # Read the files the process writes to (the parent's handles may be closed already).
    paths = (gateway.stdout_path, gateway.stderr_path)
    return "".join(path.read_text(errors="replace") for path in paths if path.exists())


SECRETS: set[str] = set(PASSWORDS)
"""Every password, access token and refresh token the tests sent or received."""


def remember(response: httpx.Response) -> httpx.Response:
    """Record the tokens ``response`` carries, so output checks can look for them."""
    cookie = refresh_cookie(response)
    if cookie:
        SECRETS.add(cookie)
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("access_token"), str):
            SECRETS.add(body["access_token"])
    return response


def leaked_secrets(output: str) -> list[str]:
    """The recorded secrets that appear in ``output``."""
    return [secret for secret in SECRETS if secret in output]


def _launch(config_path: Path, workers: int) -> GatewayProcess:
    admin = yaml.safe_load(config_path.read_text())["server"]["admin"]["port"]
    return GatewayProcess(config_path, free_port(), workers, admin_port=admin)


def launch(folder: Path, text: str, *, workers: int = 1) -> Service:
    folder.mkdir(parents=True, exist_ok=True)
    write_users(folder / "users.yaml")
    config_path = folder / "routes.yaml"
    config_path.write_text(text)
    return Service(folder, config_path, workers, _launch(config_path, workers))


@pytest.fixture(scope="session")
def upstream_port() -> Iterator[int]:
    port = free_port()
    with ServerThread(Upstream(), port):
        yield port


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, upstream_port: int) -> Iterator[Service]:
    """The shared gateway of every test here: two workers, 5m access tokens, a 2s grace."""
    running = launch(tmp_path_factory.mktemp("service"), config_text(upstream_port), workers=2)
    yield running
    running.stop()


@pytest.fixture
def start_service(tmp_path: Path, upstream_port: int) -> Iterator[Callable[..., Service]]:
    """Start a gateway of its own; keyword arguments as for ``config_text``."""
    started: list[Service] = []

    def start(*, workers: int = 1, **settings: Any) -> Service:
        running = launch(
            tmp_path / f"service{len(started)}",
            config_text(upstream_port, **settings),
            workers=workers,
        )
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


# -- the client side ------------------------------------------------------------------------

# One client for every request (making one per request costs tens of milliseconds); its cookie
# jar refuses everything, so each test sends exactly the cookies it means to.
CLIENT = httpx.Client(
    timeout=10,
    cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    limits=httpx.Limits(max_connections=50),
)


def login(
    url: str, username: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    if len(password) >= 8:  # short ones could occur in any output by chance
        SECRETS.add(password)
    return remember(
        CLIENT.post(
            f"{url}/auth/login",
            json={"username": username, "password": password},
            headers=headers,
            timeout=10,
        )
    )


def refresh(url: str, cookie: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = dict(headers or {})
    if cookie is not None:
        sent["cookie"] = f"gw_refresh={cookie}"
    return remember(CLIENT.post(f"{url}/auth/refresh", headers=sent, timeout=10))


def logout(url: str, cookie: str | None) -> httpx.Response:
    headers = {"cookie": f"gw_refresh={cookie}"} if cookie is not None else {}
    return CLIENT.post(f"{url}/auth/logout", headers=headers, timeout=10)


def call(url: str, access_token: str, path: str = "/orders/1") -> httpx.Response:
    return CLIENT.get(f"{url}{path}", headers={"authorization": f"Bearer {access_token}"})


def refused_within(url: str, access_token: str, seconds: float) -> bool:
    """Whether ``access_token`` is refused (401) within ``seconds``; fails if it is not."""
    return eventually(lambda: call(url, access_token).status_code == 401, timeout=seconds)


def cookies_set(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Every cookie the response sets: name -> {"value": ..., attribute (lower-case): value}."""
    found: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        value, *attributes = rest.split(";")
        entry = {"value": value}
        for attribute in attributes:
            key, _, attribute_value = attribute.strip().partition("=")
            entry[key.lower()] = attribute_value
        found[name] = entry
    return found


def refresh_cookie(response: httpx.Response) -> str | None:
    """The refresh token the response sets, or None."""
    entry = cookies_set(response).get("gw_refresh")
    return entry["value"] if entry and entry["value"] else None


@dataclass
class Session:
    """A logged-in client: its access token and refresh cookie."""

    access_token: str
    cookie: str


def start_session(url: str, username: str = "alice") -> Session:
    password = USERS[username][0]
    response = login(url, username, password)
    assert response.status_code == 200, response.text
    cookie = refresh_cookie(response)
    assert cookie is not None
    return Session(response.json()["access_token"], cookie)
