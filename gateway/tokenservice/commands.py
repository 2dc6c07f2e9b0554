"""The token service's operator commands: ``users add``, ``token mint``, ``sessions revoke``.

Each returns the line to print, or raises ``CommandError`` with one line for the user; the CLI
(``gateway/cli.py``) only parses arguments. A password is read from the terminal without echo
(twice, to catch a typo) or, with ``--password-stdin``, as the first line of standard input, and
is never printed.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from typing import Any, TextIO

import yaml

from gateway.auth.issuer import TokenIssuer
from gateway.auth.keys import KeyFileError, KeyRing
from gateway.auth.revocation import retention_for
from gateway.config import Config
from gateway.config.units import UnitError, parse_duration
from gateway.store import StoreError, open_store
from gateway.tokenservice.users import UsersFileError, add_user, check_scope, parse_users

__all__ = ["CommandError", "mint_token", "read_password", "revoke_sessions", "users_add"]


class CommandError(Exception):
    """A command that cannot be done; the message is one line."""


def parse_scopes(value: str | None) -> tuple[str, ...] | None:
    """``a,b`` as scope names (None when not given); CommandError for a bad one."""
    if value is None:
        return None
    scopes = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    for scope in scopes:
        problem = check_scope(scope)
        if problem:
            raise CommandError(problem)
    return scopes


def read_password(*, from_stdin: bool, stdin: TextIO | None = None) -> str:
    """The new password: the first line of stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        password = (stdin or sys.stdin).readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password (again): ")
        except EOFError:
            raise CommandError("no password given (use --password-stdin to pipe one)") from None
        if password != again:
            raise CommandError("the passwords do not match")
    if not password:
        raise CommandError("the password is empty")
    return password


def users_add(config: Config, name: str, *, scopes: str | None, password: str) -> str:
    """Add or update ``name`` in the users file."""
    if config.users.verify_url is not None or config.users.file is None:
        raise CommandError("users.verify_url is configured: users are managed by that service")
    path = config.users.file
    try:
        created = add_user(path, name, password, parse_scopes(scopes))
    except UsersFileError as exc:
        raise CommandError(str(exc)) from None
    return f"{'added' if created else 'updated'} user {name} in {path}"


def mint_token(config: Config, sub: str, *, scopes: str | None, ttl: str | None) -> str:
    """An access token for ``sub`` signed with the newest key (no session: not revocable)."""
    tokens = config.tokens
    try:
        lifetime = tokens.access_ttl if ttl is None else parse_duration(ttl)
    except UnitError as exc:
        raise CommandError(f"--ttl: {exc}") from None
    longest = max(tokens.access_ttl, 86400.0)  # the verifier's max_lifetime for our own tokens
    if not 1 <= lifetime <= longest:
        raise CommandError(f"--ttl: between 1s and {int(longest)}s (the longest accepted)")
    try:
        keyring = KeyRing.load(tokens.keys, tokens.algorithm)
    except KeyFileError as exc:
        raise CommandError(str(exc)) from None
    listed, claims = _user_defaults(config, sub)
    chosen = parse_scopes(scopes)
    issuer = TokenIssuer(
        keyring, issuer=tokens.issuer, audience=tokens.audience, access_ttl=tokens.access_ttl
    )
    token, _ = issuer.mint(
        sub, scope=" ".join(listed if chosen is None else chosen), claims=claims, ttl=lifetime
    )
    return token


def _user_defaults(config: Config, sub: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The scopes and claims the users file gives ``sub``, when it lists that user."""
    path = config.users.file
    if config.users.verify_url is not None or path is None or not path.exists():
        return (), {}
    try:
        users, _ = parse_users(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return (), {}
    user = users.get(sub)
    return (user.scopes, dict(user.claims)) if user else ((), {})


def revoke_sessions(config: Config, sub: str) -> str:
    """Revoke every session of ``sub`` in the configured store."""
    return asyncio.run(_revoke_sessions(config, sub))


async def _revoke_sessions(config: Config, sub: str) -> str:
    try:
        store = open_store(
            config.store,
            base_dir=config.base_dir,
            revocation_retention=retention_for(config.tokens),
        )
        async with store:
            sids = await store.revoke_subject(sub=sub, now=time.time())
    except StoreError as exc:
        raise CommandError(f"cannot revoke sessions: {exc}") from None
    if not sids:
        return f"{sub} has no live sessions"
    return (
        f"revoked {len(sids)} session{'s' if len(sids) != 1 else ''} of {sub}; "
        "their access tokens are refused within a second"
    )
