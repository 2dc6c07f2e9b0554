"""A real Chromium against a real gateway, the demo upstream and its SPA, on 127.0.0.1.

Debian's ``chromium`` is driven by the ``playwright`` package through ``executable_path``
(Playwright's own browser download cannot be used here). Without Chromium these tests skip with
the reason; under ``CI=true`` a missing Chromium fails them (``.ci/run`` installs it first).

Each test module gets its own gateway (``start_site``): access tokens live 2 s with no leeway,
so expiry is real and quick; the users file has the demo user and a few others, hashed with
cheap argon2 parameters. Two more servers stand for pages of other origins: another port on
127.0.0.1 (same site, so even ``SameSite=Strict`` cookies go along, and only the gateway's
Origin checks stand in the way) and a configured CORS origin.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from examples.demo_upstream import app as demo_app
from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.upstream import ServerThread
from tests.waiting import eventually

# Known to work on this kind of machine: no sandbox as root, no GPU, and none of Chromium's
# own background traffic (which a closed network refuses).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACCESS_TTL = 2  # seconds; tests wait EXPIRY for a token to be dead
EXPIRY = ACCESS_TTL + 1.2
PASSWORD = "demo-password"
USERS = {
    "demo": (PASSWORD, ["orders:read", "orders:write"]),
    "tab": ("tab-password", ["orders:read", "orders:write"]),
    "locked": ("locked-password", ["orders:read"]),
}
MAX_FAILURES = 3
_CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def chromium_path() -> str | None:
    """Debian's Chromium, or ``$CHROMIUM``; None when neither is installed."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for one test module (Playwright's sync API owns its own loop)."""
    path = chromium_path()
    if path is None:
        reason = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true .ci/run must install it")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies, no storage) for one test."""
    ctx = browser.new_context()
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@dataclass
class Site:
    """The gateway (``url``), its process and folder, and two pages of other origins."""

    url: str
    gateway: GatewayProcess
    folder: Path
    other_origin: str  # another port on 127.0.0.1: not public_url, not a CORS origin
    cors_origin: str  # in cors.allow_origins, with allow_credentials

    def access_log(self, path: str) -> list[dict[str, Any]]:
        """The access-log lines of requests to ``path``, oldest first."""
        lines = (json.loads(line) for line in self.gateway.stdout().splitlines() if line)
        return [line for line in lines if line.get("path") == path]

    def statuses(self, path: str, *, at_least: int = 1) -> list[int]:
        """The logged statuses of ``path``, once at least ``at_least`` were logged (2 s at most).

        A line is written as its answer ends, a moment after the browser has it."""

        def logged() -> list[int]:
            statuses = [int(line["status"]) for line in self.access_log(path)]
            assert len(statuses) >= at_least, f"{path}: {statuses}, not {at_least} yet"
            return statuses

        if at_least == 0:
            return logged()
        return eventually(logged, timeout=2, interval=0.02)

    def last_status(self, path: str, *, after: int = 0) -> int:
        """The status of the newest request to ``path`` once more than ``after`` were logged."""
        return self.statuses(path, at_least=after + 1)[-1]


def _other_page(title: str) -> Starlette:
    page = f"<!doctype html><html><head><title>{title}</title></head><body>{title}</body></html>"

    async def serve(request: Any) -> HTMLResponse:
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", serve)])


def _write_users(path: Path) -> None:
    users = {
        name: {"password_hash": _CHEAP.hash(password), "scopes": scopes}
        for name, (password, scopes) in USERS.items()
    }
    path.write_text(yaml.safe_dump({"users": users}))
    path.chmod(0o600)


@contextmanager
def start_site(folder: Path, *, access_cookie: bool) -> Iterator[Site]:
    """The demo upstream (with the SPA), two other-origin pages and a gateway before them."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_users(folder / "users.yaml")
    upstream_port, other_port, cors_port, port = (free_port() for _ in range(4))
    url = f"http://127.0.0.1:{port}"
    other, cors = f"http://127.0.0.1:{other_port}", f"http://127.0.0.1:{cors_port}"
    upstream = f"http://127.0.0.1:{upstream_port}"
    tokens: dict[str, Any] = {
        "issuer": url,
        "keys": "./keys",
        "access_ttl": f"{ACCESS_TTL}s",
        "leeway": 0,
        "refresh_reuse_grace": "5s",
    }
    if access_cookie:
        tokens["access_cookie"] = {"name": "gw_access"}
    config = folder / "routes.yaml"
    config.write_text(
        config_yaml(
            server={"public_url": url, "admin": {"port": free_port()}},
            tokens=tokens,
            store="sqlite:///./data/gateway.db",
            users={"file": "./users.yaml", "max_failures": MAX_FAILURES, "lockout": "1m"},
            cors={"allow_origins": [cors], "allow_credentials": True},
            routes=[
                route("spa", "/app", upstream, methods=["GET", "HEAD"], auth="public"),
                route("whoami", "/api/whoami", upstream, methods=["GET"]),
                route("live", "/api/live", upstream, methods=["GET"], websocket=True),
                route(
                    "orders-read",
                    "/api/orders",
                    upstream,
                    methods=["GET", "HEAD"],
                    scopes=["orders:read"],
                ),
                route(
                    "orders-write",
                    "/api/orders",
                    upstream,
                    methods=["POST"],
                    scopes=["orders:write"],
                ),
            ],
        )
    )
    with (
        ServerThread(demo_app, upstream_port),
        ServerThread(_other_page("another origin"), other_port),
        ServerThread(_other_page("an allowed CORS origin"), cors_port),
    ):
        admin = yaml.safe_load(config.read_text())["server"]["admin"]["port"]
        gateway = GatewayProcess(config, port, admin_port=admin)
        try:
            yield Site(url, gateway, folder, other, cors)
        finally:
            gateway.stop()
        printed = gateway.output()
        assert not any(password in printed for password, _ in USERS.values()), (
            "the gateway printed a password"
        )


@pytest.fixture(scope="module")
def cookie_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A gateway with ``tokens.access_cookie``: navigations carry the token in a cookie."""
    with start_site(tmp_path_factory.mktemp("cookie-site"), access_cookie=True) as site:
        yield site


@pytest.fixture(scope="module")
def bearer_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A gateway without an access cookie: the SPA's bearer header is the only way in."""
    with start_site(tmp_path_factory.mktemp("bearer-site"), access_cookie=False) as site:
        yield site


def sign_in(page: Page, username: str = "demo", password: str = PASSWORD) -> int:
    """Fill and send the gateway's sign-in form the way a person would; the answer's status."""
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_response(
        lambda answer: answer.request.method == "POST" and "/auth/login" in answer.url
    ) as answer:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return answer.value.status
