"""The configuration: frozen dataclasses built once from ``routes.yaml`` and validated at load.

``load_config`` collects every problem, each labelled ``PATH:LINE: message``, before failing, so
an operator fixes a broken file in one pass. Defaults are the secure choice: routes require
authentication, the ``Authorization`` header is not forwarded, only configured algorithms are
accepted, and external key sets are never fetched over plain http except from loopback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from gateway.auth.keys import SIGNING_ALGORITHMS, VERIFY_ALGORITHMS
from gateway.store import KNOWN_SCHEMES
from gateway.units import UnitError, parse_duration, parse_rate, parse_size
from gateway.yaml_source import Document, Path_, parse_yaml

T = TypeVar("T")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AuthMode = Literal["required", "optional", "public"]

RESERVED_PREFIXES = ("/auth", "/.well-known")
# Headers the gateway owns on the way upstream; an identity header may not reuse them.
_PROTECTED_HEADERS = frozenset(
    {
        "host",
        "authorization",
        "cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "via",
    }
)
_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_METHOD = re.compile(r"^[A-Z]+$")
_NO_STRINGS: tuple[str, ...] = ()
_DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256",)


class ConfigError(Exception):
    """A configuration file that cannot be used; ``problems`` lists every ``PATH:LINE: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class AdminListener:
    host: str = "127.0.0.1"
    port: int = 9090


@dataclass(frozen=True)
class ServerConfig:
    public_url: str = "http://localhost:8080"
    trusted_proxies: tuple[IpNetwork, ...] = ()
    max_body: int = 10 * 1024**2
    admin: AdminListener = AdminListener()
    allow_path_params: bool = False

    @property
    def public_origin(self) -> str:
        """``scheme://host[:port]`` of ``public_url``, as browsers send it in ``Origin``."""
        return origin_of(self.public_url)

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")


@dataclass(frozen=True)
class CookieConfig:
    name: str = "gw_refresh"
    path: str = "/auth"
    same_site: Literal["strict", "lax"] = "strict"


@dataclass(frozen=True)
class AccessCookieConfig:
    name: str = "gw_access"


@dataclass(frozen=True)
class TokensConfig:
    issuer: str = "http://localhost:8080"
    audience: str = "api"
    algorithm: str = "EdDSA"
    keys: Path = Path("keys")
    access_ttl: float = 900.0
    refresh_ttl: float = 7 * 86400.0
    refresh_idle_ttl: float = 86400.0
    refresh_reuse_grace: float = 10.0
    leeway: float = 30.0
    cookie: CookieConfig = CookieConfig()
    access_cookie: AccessCookieConfig | None = None


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    audience: str
    algorithms: frozenset[str]
    jwks_uri: str | None = None
    jwks_file: Path | None = None
    max_lifetime: float = 86400.0
    typ: str | None = None


@dataclass(frozen=True)
class UsersConfig:
    file: Path | None = Path("users.yaml")
    max_failures: int = 5
    lockout: float = 900.0
    verify_url: str | None = None


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: frozenset[str] = frozenset()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    allow_headers: tuple[str, ...] = ("authorization", "content-type", "x-request-id")
    expose_headers: tuple[str, ...] = ("x-request-id",)
    max_age: int = 600


@dataclass(frozen=True)
class HeaderRules:
    """Changes applied to the request sent upstream (names lower-case)."""

    set: tuple[tuple[str, str], ...] = ()
    remove: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RateLimit:
    count: int
    window: float


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    upstreams: tuple[str, ...]
    methods: frozenset[str] | None = None
    strip_prefix: str | None = None
    auth: AuthMode = "required"
    scopes: tuple[str, ...] = ()
    claims: tuple[tuple[str, Any], ...] = ()
    timeout: float = 30.0
    max_body: int = 10 * 1024**2
    forward_authorization: bool = False
    rate_limit: RateLimit | None = None
    headers: HeaderRules = HeaderRules()
    line: int = 0


@dataclass(frozen=True)
class Config:
    source: Path
    server: ServerConfig = ServerConfig()
    tokens: TokensConfig = TokensConfig()
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    store: str = "sqlite:///./data/gateway.db"
    users: UsersConfig = UsersConfig()
    identity_headers: tuple[tuple[str, str], ...] = (
        ("x-auth-subject", "sub"),
        ("x-auth-scopes", "scope"),
    )
    cors: CorsConfig | None = None
    routes: tuple[Route, ...] = field(default_factory=tuple)

    @property
    def base_dir(self) -> Path:
        return self.source.parent


def origin_of(url: str) -> str:
    """The ``Origin`` a browser sends for pages under ``url``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{host}{port}"


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and build the configuration at ``path``, or raise ``ConfigError``."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc}"]) from None
    # Absolute, but symlinks kept: Kubernetes mounts a ConfigMap through a symlink to a
    # timestamped folder that it deletes on update; the link is what stays valid.
    return parse_config(text, Path(os.path.abspath(source)), environ)


def parse_config(text: str, source: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Validate and build a configuration from ``text``; ``source`` anchors relative paths."""
    doc = parse_yaml(text, os.environ if environ is None else environ)
    builder = _Builder(doc, source)
    config = builder.build() if not doc.problems else None
    if doc.problems or config is None:
        problems = sorted(set(doc.problems))
        raise ConfigError([f"{source}:{line}: {message}" for line, message in problems])
    return config


class _Builder:
    """Turns the parsed document into a ``Config``, recording every problem with its line."""

    def __init__(self, doc: Document, source: Path) -> None:
        self.doc = doc
        self.source = source
        self.base = source.parent

    # -- primitives ---------------------------------------------------------------------------

    def error(self, path: Path_, message: str) -> None:
        self.doc.problems.append((self.doc.line(path), message))

    def section(self, value: Any, path: Path_, keys: frozenset[str]) -> dict[str, Any]:
        label = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        label = label or "the file"
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"{label} must be a mapping")
            return {}
        for key in value:
            if key not in keys:
                known = ", ".join(sorted(keys))
                self.error((*path, key), f"unknown key {key!r} in {label} (known: {known})")
        return value

    def get(
        self,
        mapping: dict[str, Any],
        path: Path_,
        key: str,
        convert: Callable[[Any], T],
        default: T,
    ) -> T:
        if key not in mapping or mapping[key] is None:
            return default
        try:
            return convert(mapping[key])
        except (UnitError, ValueError, TypeError) as exc:
            self.error((*path, key), f"{key}: {exc}")
            return default

    # -- converters ---------------------------------------------------------------------------

    @staticmethod
    def string(value: Any) -> str:
        if isinstance(value, bool | dict | list):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)

    @staticmethod
    def boolean(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"expected true or false, got {value!r}")

    @staticmethod
    def integer(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ValueError(f"expected a whole number, got {value!r}")

    @staticmethod
    def string_list(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return tuple(str(v) for v in value)

    def path_value(self, value: Any) -> Path:
        return self.base / self.string(value)

    @staticmethod
    def http_url(value: Any) -> str:
        url = str(value)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r} must not have a query or fragment")
        try:
            parts.port  # noqa: B018 - urllib checks the port only when it is read
        except ValueError:
            raise ValueError(f"{url!r} has an invalid port") from None
        return url

    # -- sections -----------------------------------------------------------------------------

    def build(self) -> Config | None:
        top = self.section(
            self.doc.data,
            (),
            frozenset(
                {
                    "version",
                    "server",
                    "tokens",
                    "trusted_issuers",
                    "store",
                    "users",
                    "identity_headers",
                    "cors",
                    "routes",
                }
            ),
        )
        if self.doc.data is not None and not isinstance(self.doc.data, dict):
            return None
        if "routes" not in top:
            self.error((), "the file must have a routes: key (it may be empty)")
        version = top.get("version", 1)
        if version != 1:
            self.error(("version",), f"version: only 1 is supported, got {version!r}")
        server = self.server(top.get("server"))
        tokens = self.tokens(top.get("tokens"))
        issuers = self.trusted_issuers(top.get("trusted_issuers"), tokens)
        store = self.store(top)
        users = self.users(top.get("users"))
        identity = self.identity_headers(top)
        cors = self.cors(top.get("cors"))
        routes = self.routes(top.get("routes"), server)
        return Config(
            source=self.source,
            server=server,
            tokens=tokens,
            trusted_issuers=issuers,
            store=store,
            users=users,
            identity_headers=identity,
            cors=cors,
            routes=routes,
        )

    def server(self, value: Any) -> ServerConfig:
        p: Path_ = ("server",)
        m = self.section(
            value,
            p,
            frozenset({"public_url", "trusted_proxies", "max_body", "admin", "allow_path_params"}),
        )
        d = ServerConfig()
        admin_m = self.section(m.get("admin"), (*p, "admin"), frozenset({"host", "port"}))
        port = self.get(admin_m, (*p, "admin"), "port", self.integer, d.admin.port)
        if not 0 <= port <= 65535:
            self.error((*p, "admin", "port"), f"port: {port} is not a TCP port")
        proxies: list[IpNetwork] = []
        for index, cidr in enumerate(
            self.get(m, p, "trusted_proxies", self.string_list, _NO_STRINGS)
        ):
            try:
                proxies.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                self.error((*p, "trusted_proxies", index), f"{cidr!r} is not an address or CIDR")
        return ServerConfig(
            public_url=self.get(m, p, "public_url", self.http_url, d.public_url).rstrip("/"),
            trusted_proxies=tuple(proxies),
            max_body=self.get(m, p, "max_body", parse_size, d.max_body),
            admin=AdminListener(
                host=self.get(admin_m, (*p, "admin"), "host", self.string, d.admin.host),
                port=port,
            ),
            allow_path_params=self.get(m, p, "allow_path_params", self.boolean, False),
        )

    def tokens(self, value: Any) -> TokensConfig:
        p: Path_ = ("tokens",)
        d = TokensConfig()
        m = self.section(
            value,
            p,
            frozenset(
                {
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
                }
            ),
        )
        algorithm = self.get(m, p, "algorithm", self.string, d.algorithm)
        if algorithm not in SIGNING_ALGORITHMS:
            self.error(
                (*p, "algorithm"),
                f"algorithm: {algorithm!r} is not one of {', '.join(sorted(SIGNING_ALGORITHMS))}",
            )
        cp: Path_ = (*p, "cookie")
        cm = self.section(m.get("cookie"), cp, frozenset({"name", "path", "same_site"}))
        same_site = self.get(cm, cp, "same_site", self.string, "strict").lower()
        if same_site not in ("strict", "lax"):
            self.error((*cp, "same_site"), f"same_site: {same_site!r} is not strict or lax")
            same_site = "strict"
        cookie = CookieConfig(
            name=self.get(cm, cp, "name", self.cookie_name, d.cookie.name),
            path=self.get(cm, cp, "path", self.string, d.cookie.path),
            same_site="lax" if same_site == "lax" else "strict",
        )
        access_cookie = None
        if m.get("access_cookie") is not None:
            ap: Path_ = (*p, "access_cookie")
            am = self.section(m["access_cookie"], ap, frozenset({"name"}))
            access_cookie = AccessCookieConfig(
                name=self.get(am, ap, "name", self.cookie_name, "gw_access")
            )
            if access_cookie.name == cookie.name:
                self.error(ap, "access_cookie: its name must differ from the refresh cookie's")
        tokens = TokensConfig(
            issuer=self.get(m, p, "issuer", self.string, d.issuer),
            audience=self.get(m, p, "audience", self.string, d.audience),
            algorithm=algorithm,
            keys=self.get(m, p, "keys", self.path_value, self.base / d.keys),
            access_ttl=self.get(m, p, "access_ttl", parse_duration, d.access_ttl),
            refresh_ttl=self.get(m, p, "refresh_ttl", parse_duration, d.refresh_ttl),
            refresh_idle_ttl=self.get(m, p, "refresh_idle_ttl", parse_duration, d.refresh_idle_ttl),
            refresh_reuse_grace=self.get(
                m, p, "refresh_reuse_grace", parse_duration, d.refresh_reuse_grace
            ),
            leeway=self.get(m, p, "leeway", parse_duration, d.leeway),
            cookie=cookie,
            access_cookie=access_cookie,
        )
        for key in ("access_ttl", "refresh_ttl", "refresh_idle_ttl"):
            if key in m and getattr(tokens, key) <= 0:
                self.error((*p, key), f"{key}: must be longer than zero")
        return tokens

    @staticmethod
    def cookie_name(value: Any) -> str:
        name = str(value)
        if not _TOKEN_CHARS.match(name):
            raise ValueError(f"{name!r} is not a valid cookie name")
        return name

    def trusted_issuers(self, value: Any, tokens: TokensConfig) -> tuple[TrustedIssuer, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(("trusted_issuers",), "trusted_issuers must be a list")
            return ()
        result: list[TrustedIssuer] = []
        seen: set[str] = set()
        keys = frozenset(
            {"issuer", "audience", "algorithms", "jwks_uri", "jwks_file", "max_lifetime", "typ"}
        )
        for index, item in enumerate(value):
            p: Path_ = ("trusted_issuers", index)
            m = self.section(item, p, keys)
            issuer = self.get(m, p, "issuer", self.string, "")
            audience = self.get(m, p, "audience", self.string, "")
            for key, got in (("issuer", issuer), ("audience", audience)):
                if not got:
                    self.error(p, f"trusted issuer: {key} is required")
            if issuer in seen or issuer == tokens.issuer:
                self.error((*p, "issuer"), f"issuer {issuer!r} is listed twice")
            seen.add(issuer)
            algorithms = self.get(m, p, "algorithms", self.string_list, _DEFAULT_ALGORITHMS)
            for algorithm in algorithms:
                if algorithm not in VERIFY_ALGORITHMS:
                    self.error(
                        (*p, "algorithms"),
                        f"algorithms: {algorithm!r} is not accepted "
                        f"(asymmetric only: {', '.join(sorted(VERIFY_ALGORITHMS))})",
                    )
            jwks_uri = self.get(m, p, "jwks_uri", self.http_url, None)
            jwks_file = self.get(m, p, "jwks_file", self.path_value, None)
            if (jwks_uri is None) == (jwks_file is None):
                self.error(p, "trusted issuer: give exactly one of jwks_uri or jwks_file")
            if jwks_uri is not None and not _is_safe_fetch_url(jwks_uri):
                self.error(
                    (*p, "jwks_uri"),
                    "jwks_uri: plain http is refused except for loopback hosts; use https",
                )
            result.append(
                TrustedIssuer(
                    issuer=issuer,
                    audience=audience,
                    algorithms=frozenset(algorithms),
                    jwks_uri=jwks_uri,
                    jwks_file=jwks_file,
                    max_lifetime=self.get(m, p, "max_lifetime", parse_duration, 86400.0),
                    typ=self.get(m, p, "typ", self.string, None),
                )
            )
        return tuple(result)

    def store(self, top: dict[str, Any]) -> str:
        url = self.get(top, (), "store", self.string, Config.store)
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in KNOWN_SCHEMES:
            self.error(
                ("store",),
                f"store: unknown scheme {scheme or url!r} "
                "(use sqlite:///path, redis://host:port/db or postgresql://user@host/db)",
            )
        return url

    def users(self, value: Any) -> UsersConfig:
        p: Path_ = ("users",)
        d = UsersConfig()
        m = self.section(value, p, frozenset({"file", "max_failures", "lockout", "verify_url"}))
        verify_url = self.get(m, p, "verify_url", self.http_url, None)
        if verify_url is not None and "file" in m:
            self.error(p, "users: give file or verify_url, not both")
        default_file = None if verify_url is not None else self.base / "users.yaml"
        max_failures = self.get(m, p, "max_failures", self.integer, d.max_failures)
        if max_failures < 1:
            self.error((*p, "max_failures"), "max_failures: must be at least 1")
        return UsersConfig(
            file=self.get(m, p, "file", self.path_value, default_file),
            max_failures=max_failures,
            lockout=self.get(m, p, "lockout", parse_duration, d.lockout),
            verify_url=verify_url,
        )

    def identity_headers(self, top: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        if "identity_headers" not in top:
            return Config.identity_headers
        value = top["identity_headers"]
        p: Path_ = ("identity_headers",)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(p, "identity_headers must be a mapping of header name to claim")
            return ()
        result: list[tuple[str, str]] = []
        for header, claim in value.items():
            name = header.lower().replace("_", "-")
            if not _TOKEN_CHARS.match(header) or name in _PROTECTED_HEADERS:
                self.error((*p, header), f"identity_headers: {header!r} cannot be used")
            if not isinstance(claim, str) or not claim:
                self.error((*p, header), f"identity_headers: {header} must name a claim")
                continue
            result.append((name, claim))
        return tuple(result)

    def cors(self, value: Any) -> CorsConfig | None:
        if value is None:
            return None
        p: Path_ = ("cors",)
        d = CorsConfig()
        m = self.section(
            value,
            p,
            frozenset(
                {
                    "allow_origins",
                    "allow_credentials",
                    "allow_methods",
                    "allow_headers",
                    "expose_headers",
                    "max_age",
                }
            ),
        )
        origins = self.get(m, p, "allow_origins", self.string_list, _NO_STRINGS)
        for index, origin in enumerate(origins):
            try:
                valid = origin != "*" and origin_of(origin) == origin.rstrip("/")
            except ValueError:
                valid = False
            if not valid:
                self.error(
                    (*p, "allow_origins", index),
                    f"allow_origins: {origin!r} is not an origin like https://app.example.com",
                )
        return CorsConfig(
            allow_origins=frozenset(o.rstrip("/") for o in origins),
            allow_credentials=self.get(m, p, "allow_credentials", self.boolean, False),
            allow_methods=tuple(
                x.upper()
                for x in self.get(m, p, "allow_methods", self.string_list, d.allow_methods)
            ),
            allow_headers=tuple(
                x.lower()
                for x in self.get(m, p, "allow_headers", self.string_list, d.allow_headers)
            ),
            expose_headers=tuple(
                x.lower()
                for x in self.get(m, p, "expose_headers", self.string_list, d.expose_headers)
            ),
            max_age=self.get(m, p, "max_age", self.integer, d.max_age),
        )

    def routes(self, value: Any, server: ServerConfig) -> tuple[Route, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(("routes",), "routes must be a list")
            return ()
        routes = [self.route(item, ("routes", i), server) for i, item in enumerate(value)]
        built = [r for r in routes if r is not None]
        names: dict[str, int] = {}
        for index, route in enumerate(built):
            if route.name in names:
                self.error(
                    ("routes", index, "name"),
                    f"route name {route.name!r} is already used on line {names[route.name]}",
                )
            names.setdefault(route.name, route.line)
            for other in built[:index]:
                if other.path == route.path and _methods_overlap(other.methods, route.methods):
                    self.error(
                        ("routes", index, "path"),
                        f"route {route.name!r} has the same path and methods as route "
                        f"{other.name!r} (line {other.line})",
                    )
        return tuple(built)

    def route(self, value: Any, p: Path_, server: ServerConfig) -> Route | None:
        keys = frozenset(
            {
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
            }
        )
        if not isinstance(value, dict):
            self.error(p, "each route must be a mapping")
            return None
        m = self.section(value, p, keys)
        line = self.doc.line(p)
        name = self.get(m, p, "name", self.string, "")
        if not name:
            self.error(p, "route: name is required")
        elif not _ROUTE_NAME.match(name):
            self.error((*p, "name"), f"route name {name!r}: use letters, digits, _ . : -")
        path = self.get(m, p, "path", self.string, "")
        if not path:
            self.error(p, f"route {name!r}: path is required")
        elif not path.startswith("/") or "//" in path or "/./" in path or "/../" in path:
            self.error((*p, "path"), f"path {path!r} must be an absolute, normalised path")
        path = path.rstrip("/") or "/"
        for reserved in RESERVED_PREFIXES:
            if path == reserved or path.startswith(reserved + "/"):
                self.error((*p, "path"), f"path {path!r} is under the gateway's own {reserved}")
        methods = None
        if "methods" in m and m["methods"] is not None:
            listed = self.get(m, p, "methods", self.string_list, _NO_STRINGS)
            methods = frozenset(x.upper() for x in listed)
            for method in methods:
                if not _METHOD.match(method):
                    self.error((*p, "methods"), f"methods: {method!r} is not an HTTP method")
            if "GET" in methods:
                methods = methods | {"HEAD"}
        upstreams: tuple[str, ...] = ()
        raw_upstream = m.get("upstream")
        if raw_upstream is None:
            self.error(p, f"route {name!r}: upstream is required")
        else:
            items = raw_upstream if isinstance(raw_upstream, list) else [raw_upstream]
            if not items:
                self.error((*p, "upstream"), "upstream: the list is empty")
            found: list[str] = []
            for item in items:
                try:
                    found.append(self.http_url(item).rstrip("/"))
                except ValueError as exc:
                    self.error((*p, "upstream"), f"upstream: {exc}")
            upstreams = tuple(found)
        strip_prefix = self.get(m, p, "strip_prefix", self.string, None)
        if strip_prefix is not None:
            strip_prefix = strip_prefix.rstrip("/")
            if not strip_prefix.startswith("/") or not (
                path == strip_prefix or path.startswith(strip_prefix + "/")
            ):
                self.error(
                    (*p, "strip_prefix"),
                    f"strip_prefix {strip_prefix!r} is not a leading part of path {path!r}",
                )
        auth = self.get(m, p, "auth", self.string, "required")
        if auth not in ("required", "optional", "public"):
            self.error((*p, "auth"), f"auth: {auth!r} is not required, optional or public")
            auth = "required"
        claims_value = m.get("claims") or {}
        if not isinstance(claims_value, dict):
            self.error((*p, "claims"), "claims must be a mapping of claim to value")
            claims_value = {}
        scopes = self.get(m, p, "scopes", self.string_list, _NO_STRINGS)
        if auth == "public" and (scopes or claims_value):
            self.error(p, f"route {name!r}: a public route cannot require scopes or claims")
        rate = None
        if m.get("rate_limit") is not None:
            try:
                count, window = parse_rate(m["rate_limit"])
                rate = RateLimit(count=count, window=window)
            except UnitError as exc:
                self.error((*p, "rate_limit"), f"rate_limit: {exc}")
        return Route(
            name=name,
            path=path,
            upstreams=upstreams,
            methods=methods,
            strip_prefix=strip_prefix or None,
            auth="optional" if auth == "optional" else "public" if auth == "public" else "required",
            scopes=scopes,
            claims=tuple(sorted(claims_value.items())),
            timeout=self.get(m, p, "timeout", parse_duration, 30.0),
            max_body=self.get(m, p, "max_body", parse_size, server.max_body),
            forward_authorization=self.get(m, p, "forward_authorization", self.boolean, False),
            rate_limit=rate,
            headers=self.header_rules(m.get("headers"), (*p, "headers")),
            line=line,
        )

    def header_rules(self, value: Any, p: Path_) -> HeaderRules:
        m = self.section(value, p, frozenset({"set", "remove"}))
        set_value = m.get("set") or {}
        if not isinstance(set_value, dict):
            self.error((*p, "set"), "headers.set must be a mapping of header to value")
            set_value = {}
        pairs: list[tuple[str, str]] = []
        for header, header_value in set_value.items():
            text = "" if header_value is None else str(header_value)
            if not _TOKEN_CHARS.match(header) or any(ord(c) < 32 for c in text):
                self.error((*p, "set", header), f"headers.set: {header!r} is not a valid header")
                continue
            pairs.append((header.lower(), text))
        remove = self.get(m, p, "remove", self.string_list, _NO_STRINGS)
        return HeaderRules(set=tuple(pairs), remove=frozenset(h.lower() for h in remove))


def _methods_overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    return a is None or b is None or bool(a & b)


def _is_safe_fetch_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
