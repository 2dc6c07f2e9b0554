"""Validation: the parsed YAML document becomes a ``Config``, every problem kept with its line.

Nothing is refused at the first problem: each section is checked, each problem recorded as
``(line, message)``, and the caller reports them all, so an operator fixes a file in one pass.
Key sets are never fetched over plain http except from loopback; only asymmetric algorithms
are accepted for trusted issuers; routes cannot shadow the gateway's own paths.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.config.identity import IdentityChecks
from gateway.config.model import (
    SIGNING_ALGORITHMS,
    VERIFY_ALGORITHMS,
    AccessCookieConfig,
    AdminListener,
    Config,
    CookieConfig,
    CorsConfig,
    IpNetwork,
    ServerConfig,
    TokensConfig,
    TrustedIssuer,
    UsersConfig,
    origin_of,
)
from gateway.config.providers import LoginChecks, is_safe_fetch_url
from gateway.config.reader import NO_STRINGS
from gateway.config.routes import RouteChecks
from gateway.config.units import parse_duration, parse_size
from gateway.config.yaml_source import Path_
from gateway.store import KNOWN_SCHEMES

_DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256",)


class Builder(RouteChecks, LoginChecks, IdentityChecks):
    """Turns the parsed document into a ``Config``, recording every problem with its line."""

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
                    "login",
                    "identity_headers",
                    "cors",
                    "identity_assertion",
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
        self.cookie_prefixes(tokens, server)
        issuers = self.trusted_issuers(top.get("trusted_issuers"), tokens)
        store = self.store(top)
        users = self.users(top.get("users"))
        login = self.login(top.get("login"), users_given="users" in top)
        identity = self.identity_headers(top)
        cors = self.cors(top.get("cors"))
        assertion = self.identity_assertion(top.get("identity_assertion"), identity)
        routes = self.routes(top.get("routes"), server)
        return Config(
            source=self.source,
            server=server,
            tokens=tokens,
            trusted_issuers=issuers,
            store=store,
            users=users,
            login=login,
            identity_headers=identity,
            cors=cors,
            identity_assertion=assertion,
            routes=routes,
        )

    def cookie_prefixes(self, tokens: TokensConfig, server: ServerConfig) -> None:
        """Browsers silently drop a ``__Host-`` or ``__Secure-`` cookie set against their rules:
        login would seem to work and every refresh fail. Said here instead."""
        named = [(("tokens", "cookie", "name"), tokens.cookie.name, tokens.cookie.path)]
        if tokens.access_cookie is not None:
            named.append((("tokens", "access_cookie", "name"), tokens.access_cookie.name, "/"))
        for where, name, path in named:
            prefix = name[:9].lower()
            if prefix.startswith(("__host-", "__secure-")) and not server.secure:
                self.error(
                    where,
                    f"name: a {name[: name.index('-') + 1]} cookie needs an https "
                    "server.public_url",
                )
            if prefix.startswith("__host-") and path != "/":
                self.error(where, f"name: a __Host- cookie needs path: / (it has {path})")

    def server(self, value: Any) -> ServerConfig:
        p: Path_ = ("server",)
        m = self.section(
            value,
            p,
            frozenset(
                {"public_url", "trusted_proxies", "max_body", "admin", "allow_path_params"}
                | {"keep_alive"}
            ),
        )
        d = ServerConfig()
        admin_m = self.section(m.get("admin"), (*p, "admin"), frozenset({"host", "port"}))
        port = self.get(admin_m, (*p, "admin"), "port", self.integer, d.admin.port)
        if not 0 <= port <= 65535:
            self.error((*p, "admin", "port"), f"port: {port} is not a TCP port")
        proxies: list[IpNetwork] = []
        for index, cidr in enumerate(
            self.get(m, p, "trusted_proxies", self.string_list, NO_STRINGS)
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
            keep_alive=self.get(m, p, "keep_alive", parse_duration, d.keep_alive),
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
            if jwks_uri is not None and not is_safe_fetch_url(jwks_uri):
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
            file_named="file" in m,
        )

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
        origins = self.get(m, p, "allow_origins", self.string_list, NO_STRINGS)
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
