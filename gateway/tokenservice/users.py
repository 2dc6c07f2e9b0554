"""Who may log in: the users file (argon2id hashes) or a ``users.verify_url`` service.

Both answer ``authenticate(username, password)`` with an ``Identity`` or None, the same None for
an unknown user, a wrong password and a disabled account, so the login answer cannot tell them
apart (and ``PasswordCheck`` makes them cost the same time).

The users file is re-read when it changes (checked with one ``stat`` per login), so
``gateway users add`` takes effect without a restart; a file that became unreadable or invalid
is logged once and the previous users keep working. A single bad entry is skipped and logged by
name, never with its hash.

``verify_url`` receives ``POST {"username", "password"}``. A 200 with a JSON object holding a
string ``sub`` means valid (``scope`` as a space-separated string or a list, every other member
a claim); any other 2xx/3xx/4xx answer means invalid credentials. A connection failure, a
timeout or a 5xx means the service could not check: ``CredentialsUnavailable``, answered 503 and
not counted as a failed login, so an outage of that service never locks users out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import httpx
import yaml

from gateway.auth.issuer import REGISTERED_CLAIMS
from gateway.config import UsersConfig
from gateway.observability import INPUT_FAILURES
from gateway.tokenservice.passwords import PasswordCheck, hash_password, is_argon2_hash

__all__ = [
    "CredentialsUnavailable",
    "FileCredentials",
    "Identity",
    "RemoteCredentials",
    "User",
    "UserDirectory",
    "UsersFileError",
    "add_user",
    "check_scope",
    "check_username",
    "credentials_for",
    "parse_users",
]

log = logging.getLogger(__name__)

MAX_USERNAME = 256
_USERNAME = re.compile(r"^[^\x00-\x20\x7f-\x9f\u2028\u2029]+$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 scope-token
_USER_KEYS = frozenset({"password_hash", "scopes", "claims", "disabled"})


class UsersFileError(Exception):
    """The users file cannot be read or written; one line, naming the file."""


class CredentialsUnavailable(Exception):
    """The credential check could not be made (``verify_url`` unreachable or failing)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: what goes into the session and its access tokens."""

    sub: str
    scope: str
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class User:
    """One entry of the users file."""

    name: str
    password_hash: str
    scopes: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    disabled: bool = False

    def identity(self) -> Identity:
        return Identity(self.name, " ".join(self.scopes), self.claims)


class Credentials(Protocol):
    """Checks a username and password."""

    async def authenticate(self, username: str, password: str) -> Identity | None:
        """The identity, or None for an unknown user, a wrong password or a disabled account."""
        ...

    async def warm(self) -> None:
        """Load what the first login would otherwise wait for."""
        ...

    def problem(self) -> str | None:
        """Why the last load failed while the last good state serves; None when it did not."""
        ...


def check_username(name: str) -> str | None:
    """Why ``name`` cannot be a username, or None."""
    if not name or len(name) > MAX_USERNAME:
        return f"a username has 1 to {MAX_USERNAME} characters"
    if not _USERNAME.match(name):
        return "a username has no spaces or control characters"
    return None


def check_scope(scope: str) -> str | None:
    """Why ``scope`` cannot be a scope token (RFC 6749 §3.3), or None."""
    if not _SCOPE.match(scope):
        return f"{scope!r} is not a scope (no spaces, quotes or backslashes)"
    return None


def parse_users(data: Any) -> tuple[dict[str, User], list[str]]:
    """The users in a loaded YAML document and a problem line for every entry skipped.

    Raises ``ValueError`` when the document as a whole has the wrong shape.
    """
    if data is None:
        return {}, []
    if not isinstance(data, dict) or not isinstance(data.get("users", {}), dict | None):
        raise ValueError("expected a mapping with a users: mapping")
    users: dict[str, User] = {}
    problems: list[str] = []
    for name, entry in (data.get("users") or {}).items():
        label = f"user {name!r}"
        if not isinstance(name, str) or check_username(name):
            problems.append(f"{label}: not a valid username")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a mapping")
            continue
        unknown = sorted(str(key) for key in entry if key not in _USER_KEYS)
        password_hash = entry.get("password_hash")
        scopes = entry.get("scopes") or []
        claims = entry.get("claims") or {}
        disabled = entry.get("disabled", False)
        if unknown:
            problems.append(f"{label}: unknown keys {', '.join(unknown)}")
        elif not isinstance(password_hash, str) or not is_argon2_hash(password_hash):
            problems.append(f"{label}: password_hash is not an argon2 hash")
        elif not isinstance(scopes, list) or any(
            not isinstance(s, str) or check_scope(s) for s in scopes
        ):
            problems.append(f"{label}: scopes must be a list of scope names")
        elif not isinstance(claims, dict) or not _is_json(claims):
            problems.append(f"{label}: claims must be a mapping of JSON values")
        elif not isinstance(disabled, bool):
            problems.append(f"{label}: disabled must be true or false")
        else:
            users[name] = User(
                name=name,
                password_hash=password_hash,
                scopes=tuple(scopes),
                claims=MappingProxyType(
                    {k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS}
                ),
                disabled=disabled,
            )
    return users, problems


def _is_json(value: dict[Any, Any]) -> bool:
    # YAML reads 2024-01-01 as a date, which no JWT can carry: refuse it at load, not at login.
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return all(isinstance(key, str) for key in value)


_NEVER_READ = (-1, -1, -1)


class UserDirectory:
    """The users file, re-read when it changes; its last good state stays on a broken file.

    A file that became invalid, unreadable or went missing leaves the users last loaded in
    place (an operator's typo must not lock everyone out), logs one line naming the file and
    the problem, and shows in ``problem`` until a good file is read. Write ``users: {}`` to
    remove every user. One directory serves a worker for as long as ``users.file`` names the
    same path, across reloads (``TokenEndpoints``), so a rebuild never starts from nothing.
    """

    def __init__(self, path: Path, passwords: PasswordCheck) -> None:
        self.path = path
        self._passwords = passwords
        self._users: dict[str, User] = {}
        self._signature: tuple[int, int, int] | None = _NEVER_READ
        self._loaded = False
        self._missing_logged = False
        self.problem: str | None = None
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> User | None:
        """The user called ``name`` as the file says now, or None."""
        signature = self._stat()
        if signature != self._signature:
            async with self._lock:
                if signature != self._signature:
                    await asyncio.to_thread(self._reload, signature)
        return self._users.get(name)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, signature: tuple[int, int, int] | None) -> None:
        self._signature = signature
        if signature is None:
            if self._loaded:
                self._failed(f"users file {self.path} is missing")
            elif not self._missing_logged:  # never loaded: no state to keep, nothing degraded
                self._missing_logged = True
                log.warning("users file %s not found: nobody can log in until it exists", self.path)
            return
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
            users, problems = parse_users(data)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
            # The YAML error may quote the file; only its kind is named.
            self._failed(f"users file {self.path} not loaded ({type(exc).__name__})")
            return
        for problem in problems:
            log.warning("users file %s: %s; skipped", self.path, problem)
        self._passwords.calibrate(user.password_hash for user in users.values())
        if self.problem is not None and self._loaded:
            log.warning("users file %s loaded again (%d users)", self.path, len(users))
        self._users = users
        self._loaded = True
        self.problem = None

    def _failed(self, problem: str) -> None:
        """Keep the last good users; say so once per problem."""
        if problem != self.problem:
            INPUT_FAILURES.labels("users_file").inc()
            log.warning("%s; keeping the %d users last loaded", problem, len(self._users))
        self.problem = problem


class FileCredentials:
    """Credentials checked against the users file."""

    def __init__(self, directory: UserDirectory, passwords: PasswordCheck) -> None:
        self._directory = directory
        self._passwords = passwords

    async def authenticate(self, username: str, password: str) -> Identity | None:
        user = await self._directory.get(username)
        matched = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not matched or user.disabled:
            return None
        return user.identity()

    async def warm(self) -> None:
        await self._directory.get("")

    def problem(self) -> str | None:
        return self._directory.problem


class RemoteCredentials:
    """Credentials checked by an existing accounts service (``users.verify_url``)."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http

    async def warm(self) -> None:
        return None

    def problem(self) -> str | None:
        return None  # an outage of the service is answered per login (503), not a state

    async def authenticate(self, username: str, password: str) -> Identity | None:
        try:
            response = await self._http.post(
                self._url, json={"username": username, "password": password}
            )
        except httpx.HTTPError as exc:
            # httpx messages name the URL only; the request body is never part of them.
            raise CredentialsUnavailable(f"verify_url: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise CredentialsUnavailable(f"verify_url answered {response.status_code}")
        if response.status_code != 200:
            return None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        sub = answer.get("sub") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(sub, str) or not sub:
            log.warning("verify_url answered 200 without a string sub; login refused")
            return None
        scope = answer.get("scope", "")
        if isinstance(scope, list):
            scope = " ".join(item for item in scope if isinstance(item, str))
        elif not isinstance(scope, str):
            scope = ""
        claims = {k: v for k, v in answer.items() if k not in REGISTERED_CLAIMS}
        return Identity(sub, scope, MappingProxyType(claims))


def credentials_for(
    users: UsersConfig,
    http: httpx.AsyncClient,
    passwords: PasswordCheck,
    directories: dict[Path, UserDirectory],
) -> Credentials:
    """The credential check ``users`` configures (the users file is read on first use).

    ``directories`` outlives reloads: a users file keeps its directory, and so its last good
    state, whatever else is rebuilt."""
    if users.verify_url is not None:
        return RemoteCredentials(users.verify_url, http)
    path = users.file or Path("users.yaml")
    directory = directories.get(path)
    if directory is None:
        directories.clear()  # another file now: the old one's users no longer apply
        directory = directories[path] = UserDirectory(path, passwords)
    return FileCredentials(directory, passwords)


def add_user(path: Path, name: str, password: str, scopes: tuple[str, ...] | None) -> bool:
    """Add ``name`` to the users file, or update its password (and scopes when given).

    Other users and an existing user's claims and ``disabled`` flag are kept. The file is
    replaced atomically and is mode 0600. Returns True when the user is new.
    """
    problem = check_username(name) or next(filter(None, map(check_scope, scopes or ())), None)
    if problem:
        raise UsersFileError(problem)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        data = yaml.safe_load(text) if text else None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except yaml.YAMLError:
        raise UsersFileError(f"{path}: not valid YAML; fix or remove it first") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("users", {}), dict | None):
        raise UsersFileError(f"{path}: expected a mapping with a users: mapping")
    users = data.get("users") or {}
    existing = users.get(name)
    created = not isinstance(existing, dict)
    entry: dict[str, Any] = dict(existing) if isinstance(existing, dict) else {}
    entry["password_hash"] = hash_password(password)
    if scopes is not None or created:
        entry["scopes"] = list(scopes or ())
    entry.setdefault("disabled", False)
    users[name] = entry
    data["users"] = users
    _write_private(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return created


def _write_private(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise UsersFileError(f"{path}: cannot write ({exc.strerror})") from None
