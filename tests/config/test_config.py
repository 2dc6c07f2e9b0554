"""``routes.yaml`` is validated once, every problem reported with its line (docs/configuration.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config
from gateway.config.units import parse_duration, parse_size
from tests.configs import build_config

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = "routes:\n  - name: a\n    path: /a\n    upstream: http://127.0.0.1:9000\n"


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), Path("/etc/gw/routes.yaml"), environ or {})
    return info.value.problems


def test_the_repository_routes_yaml_passes_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", "--config", str(ROOT / "routes.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_a_file_with_only_routes_is_valid() -> None:
    config = parse_config("routes:\n", Path("/x/routes.yaml"), {})
    assert config.routes == ()
    assert config.tokens.keys == Path("/x/keys")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        pytest.param(MINIMAL + "    colour: red\n", 5, "unknown key 'colour'", id="unknown key"),
        pytest.param(
            MINIMAL + "  - name: a\n    path: /b\n    upstream: http://127.0.0.1:9000\n",
            5,
            "route name 'a' is already used on line 2",
            id="duplicate route name",
        ),
        pytest.param(MINIMAL + "    timeout: soon\n", 5, "not a duration", id="bad duration"),
        pytest.param(
            "routes:\n  - name: a\n    path: /auth/x\n    upstream: http://127.0.0.1:9000\n",
            3,
            "under the gateway's own /auth",
            id="route under /auth",
        ),
        pytest.param(
            "routes:\n  - name: a\n    path: /.well-known/x\n    upstream: http://h:1\n",
            3,
            "/.well-known",
            id="route under /.well-known",
        ),
        pytest.param(
            "store: mongodb://x/y\n" + MINIMAL,
            1,
            "unknown scheme 'mongodb'",
            id="unknown store scheme",
        ),
        pytest.param(
            MINIMAL + "  - name: b\n    path: /a\n    upstream: http://127.0.0.1:9000\n",
            6,
            "same path and methods",
            id="two routes share path and methods",
        ),
        pytest.param(
            "tokens:\n  algorithm: HS256\n" + MINIMAL,
            2,
            "not one of",
            id="symmetric signing algorithm",
        ),
        pytest.param(
            "trusted_issuers:\n  - issuer: https://idp\n    audience: api\n"
            "    algorithms: [HS256]\n    jwks_uri: https://idp/jwks\n" + MINIMAL,
            4,
            "asymmetric only",
            id="HMAC for a trusted issuer",
        ),
        pytest.param(
            "trusted_issuers:\n  - issuer: https://idp\n    audience: api\n"
            "    jwks_uri: http://idp.example.com/jwks\n" + MINIMAL,
            4,
            "plain http is refused",
            id="plain http jwks_uri",
        ),
        pytest.param("server:\n  max_body: lots\n" + MINIMAL, 2, "not a size", id="bad size"),
        pytest.param(
            "server:\n  keep_alive: soon\n" + MINIMAL, 2, "soon", id="bad keep_alive duration"
        ),
        pytest.param(
            MINIMAL + "    auth: maybe\n", 5, "not required, optional or public", id="bad auth mode"
        ),
        pytest.param(MINIMAL + "    rate_limit: fast\n", 5, "not a rate", id="bad rate"),
        pytest.param(
            "routes:\n  - name: a\n    path: /a\n", 2, "upstream is required", id="missing upstream"
        ),
        pytest.param(
            MINIMAL + "    strip_prefix: /b\n",
            5,
            "not a leading part",
            id="strip_prefix not a prefix",
        ),
        pytest.param("routes: [\n", 2, "YAML syntax error", id="broken YAML"),
        pytest.param(
            "server: {}\nserver: {}\n" + MINIMAL, 2, "duplicate key 'server'", id="duplicate key"
        ),
        pytest.param(
            "tokens:\n  issuer: ${ISSUER}\n" + MINIMAL,
            2,
            "environment variable ISSUER is not set",
            id="unset variable",
        ),
        pytest.param(
            MINIMAL.replace("9000", "99999"), 4, "invalid port", id="upstream port out of range"
        ),
        pytest.param(
            "server:\n  public_url: http://localhost:99999\n" + MINIMAL,
            2,
            "invalid port",
            id="public_url port out of range",
        ),
        pytest.param(
            "tokens:\n  access_ttl: .inf\n" + MINIMAL,
            2,
            "between 0 and 100 years",
            id="infinite duration",
        ),
        pytest.param(
            MINIMAL + "    timeout: .nan\n", 5, "between 0 and 100 years", id="NaN duration"
        ),
        pytest.param(
            "server:\n  max_body: " + "9" * 5000 + "\n" + MINIMAL,
            2,
            "not a usable value",
            id="a number too long to read",
        ),
        pytest.param(
            "x: " + "[" * 3000 + "]" * 3000 + "\n" + MINIMAL,
            1,
            "nests too deeply",
            id="deep nesting",
        ),
    ],
)
def test_broken_files_name_the_problem_and_its_line(text: str, line: int, fragment: str) -> None:
    found = problems(text)
    assert any(p.startswith(f"/etc/gw/routes.yaml:{line}: ") and fragment in p for p in found), (
        found
    )


def test_an_alias_bomb_is_refused_quickly() -> None:
    import time

    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 12):
        levels.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    started = time.monotonic()
    found = problems("\n".join(levels) + "\n" + MINIMAL)
    assert time.monotonic() - started < 2
    assert any(
        p == "/etc/gw/routes.yaml:1: its aliases expand to more than 100,000 values "
        "(aliases of aliases?)"
        for p in found
    ), found


def test_a_table_of_ten_thousand_routes_without_aliases_loads() -> None:
    # About 150,000 values: the alias guard counts what aliases repeat, not the file's size.
    text = "routes:\n" + "".join(
        f"  - name: r{i}\n    path: /t{i}/items\n    methods: [GET, POST]\n"
        f"    upstream: http://127.0.0.1:9000\n    scopes: [items:read]\n"
        for i in range(10_000)
    )
    config = parse_config(text, Path("/x/routes.yaml"), {})
    assert len(config.routes) == 10_000


def test_aliases_repeating_a_large_table_are_counted() -> None:
    # 60,000 values once, then repeated twice through aliases: over the budget of 100,000.
    table = "[" + ", ".join(["x"] * 60_000) + "]"
    found = problems(f"a: &big {table}\nb: *big\nc: *big\n" + MINIMAL)
    assert any("its aliases expand to more than 100,000 values" in p for p in found), found


def test_anchors_and_aliases_for_shared_settings_are_fine() -> None:
    text = (
        "routes:\n"
        "  - {name: a, path: /a, upstream: http://127.0.0.1:1, methods: &read [GET, HEAD]}\n"
        "  - {name: b, path: /b, upstream: http://127.0.0.1:1, methods: *read}\n"
    )
    config = parse_config(text, Path("/x/routes.yaml"), {})
    assert config.routes[1].methods == frozenset({"GET", "HEAD"})


def test_a_password_in_a_url_never_appears_in_a_problem() -> None:
    found = problems("users:\n  verify_url: http://svc:s3cret-pw@accounts:99999/verify\n" + MINIMAL)
    assert any("invalid port" in p for p in found)
    assert not any("s3cret-pw" in p for p in found)


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems(
        "store: nope://x\ntokens:\n  leeway: never\nroutes:\n  - name: a\n    path: /auth\n"
        "    upstream: http://127.0.0.1:1\n    timeout: later\n"
    )
    assert len(found) == 4, found


def test_environment_variables_and_defaults_are_expanded() -> None:
    text = (
        "store: ${STORE:-sqlite:///./x.db}\n"
        "routes:\n  - name: a\n    path: /a\n    upstream: http://${HOST}:9000\n"
    )
    config = parse_config(text, Path("/x/routes.yaml"), {"HOST": "10.0.0.9"})
    assert config.store == "sqlite:///./x.db"
    assert config.routes[0].upstreams == ("http://10.0.0.9:9000",)


def test_secure_defaults() -> None:
    config = parse_config(MINIMAL, Path("/x/routes.yaml"), {})
    route = config.routes[0]
    assert route.auth == "required"
    assert route.forward_authorization is False
    assert config.server.trusted_proxies == ()
    assert config.tokens.cookie.same_site == "strict"
    assert config.tokens.cookie.path == "/auth"


def test_relative_paths_resolve_from_the_files_folder(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "routes.yaml"
    path.parent.mkdir()
    path.write_text("tokens:\n  keys: ./k\nusers:\n  file: u.yaml\n" + MINIMAL)
    config = load_config(path)
    assert config.tokens.keys == path.parent / "k"
    assert config.users.file == path.parent / "u.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), (45, 45)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("512", 512), ("64KiB", 65536), ("10MiB", 10485760), ("1GiB", 1 << 30)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_check_command_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("store: nope://x\n" + MINIMAL + "    colour: red\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{path}:1: store: unknown scheme 'nope' "
        "(use sqlite:///path, redis://host:port/db or postgresql://user@host/db)",
        f"{path}:6: unknown key 'colour' in routes[0] (known: auth, claims, forward_authorization, "
        "headers, identity_assertion, max_body, methods, name, path, rate_limit, scopes, "
        "strip_prefix, timeout, upstream, websocket)",
    ]
    assert "Traceback" not in result.stderr


def test_check_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", "--config", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"{tmp_path / 'no.yaml'}: file not found"


@pytest.mark.parametrize(
    "header", ["Host", "Content-Length", "Transfer-Encoding", "X-Forwarded-For"]
)
def test_headers_set_may_not_set_a_header_that_frames_or_routes_the_request(header: str) -> None:
    found = problems(MINIMAL + f"    headers: {{set: {{{header}: x}}}}\n")
    assert any(f"headers.set: {header} is the gateway's to set" in p for p in found), found


def test_headers_set_may_give_the_upstream_a_static_authorization() -> None:
    config = parse_config(
        MINIMAL + "    headers: {set: {Authorization: Bearer upstream-key}}\n",
        Path("/etc/gw/routes.yaml"),
        {},
    )
    assert config.routes[0].headers.set == (("authorization", "Bearer upstream-key"),)


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        pytest.param(
            "  cookie: {name: __Host-gw_refresh, path: /}\n",
            "a __Host- cookie needs an https server.public_url",
            id="__Host- over http",
        ),
        pytest.param(
            "  cookie: {name: __Host-gw_refresh}\n",
            "a __Host- cookie needs path: / (it has /auth)",
            id="__Host- under /auth",
        ),
        pytest.param(
            "  access_cookie: {name: __Secure-gw_access}\n",
            "a __Secure- cookie needs an https server.public_url",
            id="__Secure- access cookie over http",
        ),
    ],
)
def test_a_cookie_prefix_the_browser_would_refuse_is_a_config_error(
    tokens: str, fragment: str
) -> None:
    found = problems("tokens:\n" + tokens + MINIMAL)
    assert any(fragment in problem and ":2:" in problem for problem in found), found


def test_a_host_prefixed_refresh_cookie_at_the_root_over_https_is_valid() -> None:
    text = (
        "server:\n  public_url: https://gw.example\n"
        "tokens:\n  cookie: {name: __Host-gw_refresh, path: /}\n"
        "  access_cookie: {name: __Host-gw_access}\n" + MINIMAL
    )
    config = parse_config(text, Path("/etc/gw/routes.yaml"), {})
    assert config.tokens.cookie.name == "__Host-gw_refresh"


def test_loading_again_and_again_holds_no_more_memory() -> None:
    from gateway.config import yaml_source

    for _ in range(5):
        parse_config(MINIMAL, Path("/x/routes.yaml"), {})
    assert len(yaml_source._SCALAR_LOADER.constructed_objects) == 0


def test_server_keep_alive_is_75_seconds_unless_set() -> None:
    assert build_config().server.keep_alive == 75.0
    assert build_config(server={"keep_alive": "5s"}).server.keep_alive == 5.0
