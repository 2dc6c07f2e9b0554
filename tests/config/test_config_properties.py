"""Properties of the configuration loader (docs/configuration.md), on generated ``routes.yaml``.

Whatever text an operator hands it, ``parse_config`` either builds a ``Config`` or raises
``ConfigError``, each of whose problems is one line ``PATH:LINE: message``: never another
exception, never a traceback, never a problem without its line. The texts come from a grammar
of the file's own keys and of values that are plausible, wrong, or tricky for YAML (tags,
anchors, ``${VAR}``, units, URLs), rendered in block and flow style, sometimes damaged, and
from arbitrary text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, event, example, given, settings
from hypothesis import strategies as st

from gateway.config import Config, ConfigError, parse_config

SOURCE = Path("/etc/gw/routes.yaml")
ENVIRON = {"HOST": "127.0.0.1", "EMPTY": "", "PORT": "9000", "WEIRD": "a: b\n- c"}
PROBLEM = re.compile(rf"{re.escape(str(SOURCE))}:[1-9][0-9]*: [^\r\n]+")

# -- the grammar -----------------------------------------------------------------------------

SECTIONS: dict[str, list[str]] = {
    "": [
        "version",
        "server",
        "tokens",
        "trusted_issuers",
        "store",
        "users",
        "login",
        "identity_headers",
        "cors",
        "identity_assertion",
        "routes",
    ],
    "server": [
        "public_url",
        "trusted_proxies",
        "max_body",
        "admin",
        "allow_path_params",
        "keep_alive",
    ],
    "admin": ["host", "port"],
    "tokens": [
        "issuer",
        "audience",
        "algorithm",
        "keys",
        "access_ttl",
        "refresh_ttl",
        "refresh_idle_ttl",
        "refresh_reuse_grace",
        "leeway",
        "cookie",
        "access_cookie",
    ],
    "cookie": ["name", "path", "same_site"],
    "access_cookie": ["name"],
    "trusted_issuers": [
        "issuer",
        "audience",
        "algorithms",
        "jwks_uri",
        "jwks_file",
        "max_lifetime",
        "typ",
    ],
    "users": ["file", "max_failures", "lockout", "verify_url"],
    "login": ["providers"],
    "providers": [
        "name",
        "issuer",
        "client_id",
        "client_secret",
        "scopes",
        "subject",
        "scopes_from",
        "scope_map",
        "require",
        "backchannel_logout",
    ],
    "identity_assertion": ["header", "ttl"],
    "identity_headers": ["X-Auth-Subject", "X_Tenant", "Host", "x-user", "bad header", "X-Ünï"],
    "cors": [
        "allow_origins",
        "allow_credentials",
        "allow_methods",
        "allow_headers",
        "expose_headers",
        "max_age",
    ],
    "routes": [
        "name",
        "path",
        "methods",
        "upstream",
        "strip_prefix",
        "auth",
        "scopes",
        "claims",
        "timeout",
        "max_body",
        "forward_authorization",
        "rate_limit",
        "headers",
        "identity_assertion",
        "websocket",
    ],
    "headers": ["set", "remove"],
    "set": ["X-Env", "Host", "authorization", "Bad Name", "x-request-id"],
}
# Keys no section knows, and keys that YAML reads as something else than a string.
ODD_KEYS = ["colour", "<<", "1", "null", "~", "true", "? x", "'quoted'", '"a b"', "[a]"]

PLAUSIBLE = [
    "1",
    "30s",
    "500ms",
    "15m",
    "7d",
    "10MiB",
    "64KiB",
    "5/s",
    "100/min",
    "http://127.0.0.1:9000",
    "https://idp.example/",
    "http://${HOST}:${PORT}",
    "https://app.example.com",
    "/api",
    "/api/v1",
    "RS256",
    "EdDSA",
    "required",
    "public",
    "strict",
    "lax",
    "gw_refresh",
    "__Host-gw",
    "10.0.0.0/8",
    "sqlite:///./data/gateway.db",
    "redis://localhost:6379/0",
    "GET",
    "true",
    "false",
]
WRONG = [
    "-1",
    "0",
    "65536",
    "1e400",
    "1" * 30,
    "soon",
    "30 parsecs",
    "5/fortnight",
    "http://[::1",
    "http://h:99999",
    "http://h:port",
    "ftp://x",
    "https://x/?q=1",
    "http://user:secret@host",
    "*",
    "//x",
    "/auth/x",
    "/.well-known/x",
    "/a/../b",
    "HS256",
    "none",
    "mongodb://x/y",
    "999.999.999.999/99",
    "get",
    "GET /x",
]
YAML_TRICKY = [
    "${HOST}",
    "${UNSET}",
    "${UNSET:-fallback}",
    "${EMPTY:-}",
    "${WEIRD}",
    "${",
    "yes",
    "on",
    "~",
    "null",
    "''",
    '""',
    "2020-01-01",
    ".inf",
    "-.inf",
    ".nan",
    "0x1F",
    "0o17",
    "0b12",
    "1__0",
    "1_000",
    "12:30:00",
    "'single'",
    '"double \\u00e9 \\x41"',
    '"bad escape \\q"',
    "é",
    "\U0001f600",
    "a: b",
    "- a",
    "[a, b",
    "{a: 1}",
    "&anchor 5",
    "*anchor",
    "*nowhere",
    "!!str 5",
    "!!int 5",
    "!!float 1.5",
    "!!bool true",
    "!!null ''",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!custom x",
    "!!python/object:os.system x",
    "|\n  block",
    ">-\n  folded",
    "# only a comment",
]
# Plain scalars YAML resolves as a date or a number it then cannot build (ValueError): the
# loader reports them as values it cannot use.
UNBUILDABLE = [
    "2020-13-45",
    "2020-02-30",
    "2020-01-01T25:61:00Z",
    "2020-1-1 25:00:00",
    "0x_",
    "+0b_",
]
# Explicit tags that PyYAML's SafeLoader cannot construct from these values, and digit strings
# past int()'s 4300-digit limit: the loader's known failures (see the expected failures below).
UNCONSTRUCTABLE = [
    "!!bool maybe",
    "!!int ''",
    "!!int",
    "!!float ''",
    "!!timestamp x",
    "!!timestamp 2020-01-01",
    "!!int 0x",
    "!!float .",
]
# Keys holding a line break, which a problem must not print raw (it would split the line).
MULTILINE_KEYS = ['"a\\nb"', '"a\\rb"']
HUGE_NUMBERS = ["1" * 5000, "1" * 5000 + "/s", "1" * 5000 + "B", "1" * 5000 + "ms"]

# A value: a rendered scalar (str), a sequence (list) or a mapping (a tuple of key-value
# pairs, so that a key may repeat, as in a file).
Value = Any

ROUTE_API = (
    ("name", "api"),
    ("path", "/api"),
    ("methods", ["GET", "POST"]),
    ("upstream", ["http://127.0.0.1:9000", "http://127.0.0.1:9001/base"]),
    ("strip_prefix", "/api"),
    ("auth", "required"),
    ("scopes", ["orders:read"]),
    ("claims", (("tenant", "acme"),)),
    ("timeout", "30s"),
    ("max_body", "1MiB"),
    ("forward_authorization", "false"),
    ("rate_limit", "100/min"),
    ("headers", (("set", (("X-Env", "prod"),)), ("remove", ["X-Debug"]))),
    ("identity_assertion", "false"),
    ("websocket", "true"),
)
ROUTE_OPEN = (("name", "open"), ("path", "/public"), ("upstream", "http://${HOST}:${PORT}"))
# A complete, valid file: the generated ones are variations of it, or built from the grammar.
VALID: Value = (
    ("version", "1"),
    (
        "server",
        (
            ("public_url", "https://gw.example"),
            ("trusted_proxies", ["10.0.0.0/8", "2001:db8::/32"]),
            ("max_body", "10MiB"),
            ("admin", (("host", "127.0.0.1"), ("port", "9090"))),
            ("allow_path_params", "false"),
            ("keep_alive", "75s"),
        ),
    ),
    (
        "tokens",
        (
            ("issuer", "https://gw.example"),
            ("audience", "api"),
            ("algorithm", "EdDSA"),
            ("keys", "./keys"),
            ("access_ttl", "15m"),
            ("refresh_ttl", "30d"),
            ("refresh_idle_ttl", "7d"),
            ("refresh_reuse_grace", "10s"),
            ("leeway", "30s"),
            ("cookie", (("name", "gw_refresh"), ("path", "/auth"), ("same_site", "strict"))),
            ("access_cookie", (("name", "gw_access"),)),
        ),
    ),
    (
        "trusted_issuers",
        [
            (
                ("issuer", "https://idp.example/"),
                ("audience", "api"),
                ("algorithms", ["RS256", "ES256"]),
                ("jwks_uri", "https://idp.example/jwks.json"),
                ("max_lifetime", "1h"),
                ("typ", "at+jwt"),
            )
        ],
    ),
    ("store", "sqlite:///./data/gateway.db"),
    ("users", (("file", "./users.yaml"), ("max_failures", "5"), ("lockout", "15m"))),
    (
        "login",
        (
            (
                "providers",
                [
                    (
                        ("name", "corp"),
                        ("issuer", "https://idp.example/"),
                        ("client_id", "gateway"),
                        ("client_secret", "${HOST}"),
                        ("scopes", ["openid", "email"]),
                        ("subject", "email"),
                        ("scopes_from", "groups"),
                        ("scope_map", (("admins", ["orders:read"]),)),
                        ("require", (("email_verified", "true"),)),
                        ("backchannel_logout", "true"),
                    )
                ],
            ),
        ),
    ),
    ("identity_headers", (("X-Auth-Subject", "sub"), ("X-Auth-Scopes", "scope"))),
    (
        "cors",
        (
            ("allow_origins", ["https://app.example.com"]),
            ("allow_credentials", "true"),
            ("allow_methods", ["GET", "POST"]),
            ("allow_headers", ["authorization"]),
            ("expose_headers", ["x-request-id"]),
            ("max_age", "600"),
        ),
    ),
    ("identity_assertion", (("header", "X-Gateway-Assertion"), ("ttl", "60s"))),
    ("routes", [ROUTE_API, ROUTE_OPEN]),
)

# Characters PyYAML reads at all (it refuses other controls); the tricky texts use any.
_READABLE = st.characters(
    blacklist_categories=["Cs", "Cc", "Cn"], whitelist_characters="\t\n\r", max_codepoint=0x2FFF
)
_TEXT = {False: st.text(_READABLE, max_size=40), True: st.text(max_size=40)}
_QUOTED = st.text(
    st.characters(blacklist_categories=["Cs", "Cc", "Cn"], max_codepoint=0x2FFF), max_size=12
).map(lambda s: "'" + s.replace("'", "''") + "'")
_PLAIN_SCALARS = [
    st.sampled_from(PLAUSIBLE),
    st.sampled_from(WRONG),
    st.sampled_from(YAML_TRICKY),
    st.sampled_from(UNBUILDABLE),
    st.integers(-(2**70), 2**70).map(str),
    _QUOTED,
]
_SCALARS = {
    False: st.one_of(*_PLAIN_SCALARS),
    True: st.one_of(*_PLAIN_SCALARS, st.sampled_from(UNCONSTRUCTABLE + HUGE_NUMBERS)),
}
_ODD = {False: st.sampled_from(ODD_KEYS), True: st.sampled_from(ODD_KEYS + MULTILINE_KEYS)}
_KEYS = {
    tricky: {
        section: st.one_of(*[st.sampled_from(names)] * 3, _ODD[tricky])
        for section, names in SECTIONS.items()
    }
    for tricky in (False, True)
}
_ANY_KEY = {
    tricky: st.one_of(st.sampled_from(["name", "path", "upstream"]), _ODD[tricky])
    for tricky in (False, True)
}


def draw_value(draw: st.DrawFn, section: str, depth: int, tricky: bool) -> Value:
    """What ``section:`` holds: a scalar, a mapping of its keys, or a list of either."""
    kind = draw(st.integers(0, 3)) if depth > 0 else 0
    if kind <= 1:
        return draw(_SCALARS[tricky])
    if kind == 2:
        return draw_mapping(draw, section, depth - 1, tricky)
    return [draw_value(draw, section, depth - 1, tricky) for _ in range(draw(st.integers(0, 3)))]


def draw_mapping(draw: st.DrawFn, section: str, depth: int, tricky: bool) -> Value:
    keys = _KEYS[tricky].get(section, _ANY_KEY[tricky])
    return tuple(
        (key, draw_value(draw, key, depth, tricky))
        for key in (draw(keys) for _ in range(draw(st.integers(0, 5))))
    )


# Other valid values of some keys, so that a variation of VALID may still be valid.
ALTERNATIVES: dict[str, list[Value]] = {
    "public_url": ["http://localhost:8080", "https://gw.example/base/"],
    "max_body": ["0", "512", "1GiB", "65536"],
    "port": ["0", "65535"],
    "algorithm": ["RS256", "ES256"],
    "access_ttl": ["1", "500ms", "1h"],
    "same_site": ["lax", "Strict"],
    "algorithms": ["RS256", ["EdDSA"]],
    "store": ["redis://localhost:6379/0", "postgresql://gw@db/gateway"],
    "max_failures": ["1", "100"],
    "allow_origins": ["https://app.example.com:8443", []],
    "methods": ["GET", ["PUT", "DELETE"], "~"],
    "upstream": ["https://svc.example", ["http://[::1]:9000"]],
    "strip_prefix": ["/", "~"],
    "auth": ["optional", "public"],
    "timeout": ["1s", "2.5s", "10m"],
    "rate_limit": ["5/s", "1000 / hour", "~"],
    "path": ["/", "/api/v2"],
    "name": ["api.v2", "a_b:c-d"],
    "remove": ["X-One", []],
}


def draw_variant(draw: st.DrawFn, tricky: bool) -> Value:
    """``VALID`` with one to four of its entries dropped, repeated, replaced (by another valid
    value, a scalar or a value of the grammar), or joined by an odd sibling."""
    targets = draw(st.lists(st.sampled_from(_ENTRY_PATHS), min_size=1, max_size=4, unique=True))
    document = VALID
    for path in sorted(targets, reverse=True):  # later entries first: earlier paths hold
        key, item = _entry(document, path)
        change = draw(st.integers(0, 6))
        if change == 0:
            entries: list[tuple[str, Value]] = []
        elif change == 1:
            entries = [(key, item), (key, item)]
        elif change in (2, 3):
            entries = [(key, draw(st.sampled_from(ALTERNATIVES.get(key, [item]))))]
        elif change == 4:
            entries = [(key, draw(_SCALARS[tricky]))]
        elif change == 5:
            entries = [(key, draw_value(draw, key, 2, tricky))]
        else:
            entries = [
                (key, item),
                (draw(_KEYS[tricky].get(key, _ANY_KEY[tricky])), draw(_SCALARS[tricky])),
            ]
        document = _replaced(document, path, entries)
    return document


def _entry_paths(value: Value, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Where every mapping entry of ``value`` is: positions in the nested tuples and lists."""
    found: list[tuple[int, ...]] = []
    if isinstance(value, tuple):
        for index, (_, item) in enumerate(value):
            found += [(*path, index), *_entry_paths(item, (*path, index))]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _entry_paths(item, (*path, index))
    return found


def _entry(value: Value, path: tuple[int, ...]) -> tuple[str, Value]:
    for index in path[:-1]:
        value = value[index][1] if isinstance(value, tuple) else value[index]
    entry: tuple[str, Value] = value[path[-1]]
    return entry


def _replaced(value: Value, path: tuple[int, ...], entries: list[tuple[str, Value]]) -> Value:
    index, rest = path[0], path[1:]
    if isinstance(value, list):
        return [*value[:index], _replaced(value[index], rest, entries), *value[index + 1 :]]
    if not rest:
        return (*value[:index], *entries, *value[index + 1 :])
    key, item = value[index]
    return (*value[:index], (key, _replaced(item, rest, entries)), *value[index + 1 :])


_ENTRY_PATHS = _entry_paths(VALID)


def render(value: Value, indent: int, flow: bool) -> list[str]:
    """Lines of YAML for ``value`` at ``indent``: block style, or flow style when ``flow``."""
    pad = " " * indent
    if isinstance(value, str):
        return [pad + line for line in value.split("\n")]
    if flow:
        return [pad + _flow(value)]
    if not value:
        return [pad + ("{}" if isinstance(value, tuple) else "[]")]
    lines: list[str] = []
    if isinstance(value, tuple):
        for key, item in value:
            if isinstance(item, str):
                first, *rest = item.split("\n")
                lines.append(f"{pad}{key}: {first}")
                lines += [f"{pad}  {line.strip()}" for line in rest]
            else:
                lines.append(f"{pad}{key}:")
                lines += render(item, indent + 2, flow)
        return lines
    for item in value:
        if isinstance(item, str) and "\n" not in item:
            lines.append(f"{pad}- {item}")
        else:
            lines.append(f"{pad}-")
            lines += render(item, indent + 2, flow)
    return lines


def _flow(value: Value) -> str:
    if isinstance(value, str):
        return value.replace("\n", " ")
    if isinstance(value, tuple):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value) + "}"
    return "[" + ", ".join(_flow(v) for v in value) + "]"


@st.composite
def documents(draw: st.DrawFn, tricky: bool) -> str:
    """A ``routes.yaml``-like text: a variation of ``VALID`` or a document of the grammar,
    each top-level section in block or flow style."""
    if draw(st.booleans()):
        top = draw_variant(draw, tricky)
    else:
        top = draw_mapping(draw, "", 4, tricky)
    lines: list[str] = []
    for key, value in top:
        if draw(st.integers(0, 4)) == 0:
            lines.append(f"{key}: {_flow(value)}")
        else:
            lines += render(((key, value),), 0, False)
    text = "\n".join(lines) + "\n"
    if tricky and draw(st.integers(0, 4)) == 0:
        # Every number in the file past int()'s 4300-digit limit: "1111...1/min", "1111...1s".
        text = re.sub(r"(?<=[:-] )[0-9]+", "1" * 5000, text)
    return text


@st.composite
def damaged(draw: st.DrawFn, tricky: bool) -> str:
    """A document with a line dropped, repeated, re-indented, or arbitrary text put in."""
    lines = draw(documents(tricky)).split("\n")
    at = draw(st.integers(0, len(lines) - 1))
    change = draw(st.integers(0, 3))
    if change == 0:
        del lines[at]
    elif change == 1:
        lines.insert(at, lines[at])
    elif change == 2:
        lines[at] = " " * draw(st.integers(1, 3)) + lines[at]
    else:
        lines.insert(at, draw(_TEXT[tricky]))
    return "\n".join(lines)


def config_texts(tricky: bool) -> st.SearchStrategy[str]:
    """Documents (most), damaged documents, and arbitrary text; ``tricky`` adds what the
    loader is known to fail on: unconstructable tags, huge numbers, unreadable characters."""
    return st.one_of(documents(tricky), documents(tricky), damaged(tricky), _TEXT[tricky])


def problems_of(text: str) -> list[str] | None:
    """The problems of ``text``, or None when it builds a ``Config``. Any other exception fails
    the test it is raised in."""
    try:
        config = parse_config(text, SOURCE, ENVIRON)
    except ConfigError as error:
        return error.problems
    assert isinstance(config, Config)
    return None


def assert_every_problem_has_its_line(problems: list[str] | None) -> None:
    if problems is not None:
        assert problems, "a ConfigError with no problem"
        assert [p for p in problems if not PROBLEM.fullmatch(p)] == []


# -- the properties --------------------------------------------------------------------------

MINIMAL = "routes:\n  - name: a\n    path: /a\n    upstream: http://127.0.0.1:9000\n"


@given(config_texts(tricky=False))
@example("\n".join(render(VALID, 0, False)) + "\n")
@example(MINIMAL)
@example(MINIMAL + "    rate_limit: 5/fortnight\n")
@example("routes:\n  - &r {name: a, path: /a, upstream: 'http://${HOST}:9000'}\n  - *r\n")
@example("routes: [\n")
@example(f"routes: [{', '.join(UNBUILDABLE)}]\n")
@example("routes:\n  - !!str 5\n  - !!binary aGVsbG8=\n  - !!set {a}\n")
def test_any_text_is_a_config_or_a_config_error_whose_every_problem_has_its_line(
    text: str,
) -> None:
    problems = problems_of(text)
    event("a Config" if problems is None else "a ConfigError")
    assert_every_problem_has_its_line(problems)


def test_the_valid_file_the_texts_vary_is_valid() -> None:
    assert problems_of("\n".join(render(VALID, 0, False)) + "\n") is None


# Regression: tags PyYAML cannot build, 5000-digit numbers and characters YAML refuses
# once escaped the loader as exceptions (found by these properties).


@given(config_texts(tricky=True))
@settings(phases=[Phase.explicit, Phase.generate])  # shrinking 5000-digit files takes minutes
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_any_text_at_all_is_a_config_or_a_config_error_whose_every_problem_has_its_line(
    text: str,
) -> None:
    problems = problems_of(text)
    event("a Config" if problems is None else "a ConfigError")
    assert_every_problem_has_its_line(problems)


# -- found by the properties -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["!!bool maybe", "!!int ''", "!!float ''", "!!timestamp x"])
def test_an_unconstructable_tagged_value_is_a_problem_on_its_line(value: str) -> None:
    problems = problems_of(f"routes:\n  - {value}\n")
    assert problems is not None
    assert_every_problem_has_its_line(problems)
    assert problems[0].startswith(f"{SOURCE}:2: ")


def test_a_rate_limit_with_a_huge_count_is_a_problem_on_its_line() -> None:
    problems = problems_of(MINIMAL + "    rate_limit: " + "1" * 5000 + "/s\n")
    assert problems is not None
    assert_every_problem_has_its_line(problems)


def test_an_unreadable_character_is_a_problem_on_its_line() -> None:
    problems = problems_of(MINIMAL + "    timeout: 30s\x1f\n")
    assert problems is not None
    assert_every_problem_has_its_line(problems)
    assert problems[0].startswith(f"{SOURCE}:5: ")


def test_an_identity_header_name_holding_a_line_break_is_a_problem_on_one_line() -> None:
    problems = problems_of('identity_headers:\n  "a\\nb": 1\n' + MINIMAL)
    assert_every_problem_has_its_line(problems)
