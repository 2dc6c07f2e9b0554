"""Reading a login request's body: JSON, a urlencoded form or a multipart form, bounded.

Security reasoning:

- At most ``BODY_LIMIT`` bytes are read, whatever ``Content-Length`` claims (a larger declared
  length is refused before reading), so a login costs bounded memory.
- A form may hold at most ``MAX_FIELDS`` fields and no file; a repeated field is refused rather
  than resolved (which copy counts would be a guess, and guesses are how checks get bypassed).
- Errors are fixed sentences: nothing from the body, a password least of all, is echoed.
- ``next`` is kept only when it is a same-origin path (``pages.safe_next``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

from gateway.tokenservice.pages import safe_next

__all__ = [
    "BODY_LIMIT",
    "MAX_FIELDS",
    "BadForm",
    "LoginForm",
    "read_body",
    "read_login_form",
    "urlencoded_fields",
]

BODY_LIMIT = 16 * 1024
MAX_FIELDS = 16
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class BadForm(Exception):
    """A login body that cannot be used: 400 ``invalid_request`` or 413 ``payload_too_large``."""

    def __init__(self, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.status = status
        self.code = "payload_too_large" if status == 413 else "invalid_request"
        self.description = description


@dataclass(frozen=True, slots=True)
class LoginForm:
    """The credentials of a login, where to go next, and whether a browser form sent them."""

    username: str
    password: str
    next_path: str | None
    html: bool


def wants_page(request: Request) -> bool:
    """A browser's form post, which gets the sign-in page back rather than JSON."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type in _FORMS and "text/html" in request.headers.get("accept", "")


async def read_login_form(request: Request) -> LoginForm:
    """The login request's credentials; ``BadForm`` when the body is unusable."""
    body = await read_body(request)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        fields = _json_fields(body)
    elif media_type == "application/x-www-form-urlencoded":
        fields = urlencoded_fields(body)
    elif media_type == "multipart/form-data":
        fields = await _multipart_fields(request, body)
    else:
        raise BadForm("Send the credentials as JSON or as a form")
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadForm("Both username and password are required")
    next_value = fields.get("next")
    return LoginForm(
        username=username,
        password=password,
        next_path=safe_next(next_value) if isinstance(next_value, str) else None,
        html=wants_page(request),
    )


async def read_body(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The whole request body, at most ``limit`` bytes; ``BadForm`` otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise BadForm("Invalid Content-Length")
    too_large = BadForm(f"The body is larger than {limit} bytes", status=413)
    if declared is not None and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:
        raise BadForm("The request body was cut short") from None
    return bytes(body)


def _json_fields(body: bytes) -> Mapping[str, object]:
    try:
        data = json.loads(body, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        raise BadForm("The body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadForm("The body must be a JSON object")
    return data


def urlencoded_fields(body: bytes) -> Mapping[str, object]:
    """A form's fields; ``BadForm`` when it is malformed or repeats one."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except (ValueError, UnicodeDecodeError):
        raise BadForm("The form is malformed") from None
    return _unique(pairs)


async def _multipart_fields(request: Request, body: bytes) -> Mapping[str, object]:
    async def replay() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    replayed = Request(request.scope, replay)
    try:
        async with replayed.form(
            max_files=0, max_fields=MAX_FIELDS, max_part_size=BODY_LIMIT
        ) as form:
            items = form.multi_items()
    except (HTTPException, MultiPartException, ValueError):
        raise BadForm("The form is malformed") from None
    pairs = [(name, value) for name, value in items if isinstance(value, str)]
    if len(pairs) != len(items):
        raise BadForm("The form may not carry files")
    return _unique(pairs)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # A repeated key is refused like a repeated form field: which one a parser keeps varies.
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise BadForm("A JSON key is repeated")
    return fields


def _unique(pairs: list[tuple[str, str]]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, value in pairs:
        if name in fields:
            raise BadForm("A form field is repeated")
        fields[name] = value
    return fields
