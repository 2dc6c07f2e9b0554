"""The configuration's shape: frozen dataclasses, built once per load and never changed.

Defaults are the secure choice: routes require authentication, the ``Authorization`` header is
not forwarded, cookies are ``SameSite=Strict`` on ``/auth``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AuthMode = Literal["required", "optional", "public"]

# The algorithms the gateway signs its own tokens with, and those it verifies (a configuration
# naming another is refused). Asymmetric only: an HMAC algorithm verified with a public key would
# let anyone who fetched the JWKS mint tokens, and ``none`` needs no key at all.
SIGNING_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256"})
VERIFY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

# The gateway's own paths: the token service and the JWKS. No route may lie under them, and the
# front door never proxies them, whatever the route table says.
RESERVED_PREFIXES = ("/auth", "/.well-known")


def is_reserved(path: str) -> bool:
    """Whether a normalised ``path`` is one of the gateway's own (``RESERVED_PREFIXES``)."""
    return path.startswith(RESERVED_PREFIXES) and any(
        path == prefix or path.startswith(prefix + "/") for prefix in RESERVED_PREFIXES
    )


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
    # An idle keep-alive connection, or a request head still incomplete, is closed after this.
    keep_alive: float = 75.0

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
    file_named: bool = False  # ``file`` was given: it must exist (see ``missing_inputs``)


def missing_inputs(config: Config) -> list[str]:
    """Files the configuration names that are not there, as ``gateway check`` reports them.

    Checked by ``check`` and by a reload, not by the parser: ``gateway users add`` must be able
    to create the users file the configuration names."""
    users = config.users
    if users.file_named and users.file is not None and not users.file.exists():
        return [f"{config.source}: users.file: {users.file} does not exist"]
    return []


@dataclass(frozen=True)
class OidcProviderConfig:
    """One OpenID Connect provider users may sign in with (``login.providers``)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    subject: str = "sub"
    scopes_from: str | None = None
    scope_map: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    require: tuple[tuple[str, Any], ...] = ()
    backchannel_logout: bool = False
    secret_in_file: bool = False  # client_secret written in the file, not from ${VAR}
    # Where it is written: not part of what it is, so a reload that only moves it keeps the
    # provider (and its discovery) running.
    line: int = field(default=0, compare=False)

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class LoginConfig:
    providers: tuple[OidcProviderConfig, ...] = ()
    password_form: bool = True  # the sign-in page shows the form (``users`` configured)


def config_warnings(config: Config) -> list[str]:
    """Choices that work but that ``gateway check`` should question, as ``PATH:LINE: warning``."""
    return [
        f"{config.source}:{p.line}: warning: login.providers {p.name}: client_secret is "
        "written in the file; take it from the environment with ${VAR}"
        for p in config.login.providers
        if p.secret_in_file
    ]


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: frozenset[str] = frozenset()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    allow_headers: tuple[str, ...] = ("authorization", "content-type", "x-request-id")
    expose_headers: tuple[str, ...] = ("x-request-id",)
    max_age: int = 600


@dataclass(frozen=True)
class IdentityAssertionConfig:
    """The signed identity assertion sent upstream (docs/forward-auth.md#the-identity-assertion)."""

    header: str = "x-gateway-assertion"  # lower-case
    ttl: float = 60.0


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
    identity_assertion: bool = True  # false: this route's requests carry no assertion
    websocket: bool = False
    line: int = 0


@dataclass(frozen=True)
class Config:
    source: Path
    server: ServerConfig = ServerConfig()
    tokens: TokensConfig = TokensConfig()
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    store: str = "sqlite:///./data/gateway.db"
    users: UsersConfig = UsersConfig()
    login: LoginConfig = LoginConfig()
    identity_headers: tuple[tuple[str, str], ...] = (
        ("x-auth-subject", "sub"),
        ("x-auth-scopes", "scope"),
    )
    cors: CorsConfig | None = None
    identity_assertion: IdentityAssertionConfig | None = None
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
