"""Properties of ``read_login_form``, the login request's body, on generated bodies.

Whatever body and ``Content-Type`` a login request carries, ``read_login_form`` returns the
credentials or refuses with ``BadForm`` (400 or 413), never another exception (a 500); what it
returns is two strings and a ``next`` that ``safe_next`` let through, and a refusal never
repeats the password.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote_plus

from hypothesis import event, example, given
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from gateway.tokenservice.login_form import BODY_LIMIT, BadForm, LoginForm, read_login_form
from gateway.tokenservice.pages import safe_next

PASSWORD = "correct-horse-battery"
BOUNDARY = "b0undary"
field = st.tuples(
    st.sampled_from(["username", "password", "next", "other", "", "username "]),
    st.one_of(
        st.sampled_from(["alice", PASSWORD, "/orders", "//evil.example", ""]),
        st.text(max_size=10),
    ),
)
# Mostly a username and a password, among other fields (a repeated one, a next).
fields = st.one_of(
    st.builds(
        lambda extra, user: [("username", user), ("password", PASSWORD), *extra],
        st.lists(field, max_size=2),
        st.sampled_from(["alice", "", "ünï"]),
    ).flatmap(st.permutations),
    st.lists(field, max_size=5),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=5,
)


def as_json(pairs: list[tuple[str, str]]) -> bytes:
    # Written by hand so that a key may repeat, as a client may send it.
    return ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}").encode()


def as_form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode()


def as_multipart(pairs: list[tuple[str, str]]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in pairs
    ]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
bodies = st.one_of(
    st.tuples(st.just(JSON), fields.map(as_json)),
    st.tuples(st.just(FORM), fields.map(as_form)),
    st.tuples(st.just(MULTIPART), fields.map(as_multipart)),
    st.tuples(st.just(JSON), json_values.map(lambda v: json.dumps(v).encode())),
    st.tuples(
        st.sampled_from(
            [
                JSON,
                FORM,
                MULTIPART,
                "multipart/form-data",
                "multipart/form-data; boundary=",
                "application/problem+json; charset=utf-8",
                "text/plain",
                "",
            ]
        ),
        st.one_of(
            st.binary(max_size=60),
            fields.map(as_multipart).map(lambda body: body[: len(body) // 2]),  # cut short
            st.just(b"x" * (BODY_LIMIT + 1)),
        ),
    ),
)
lengths = st.sampled_from(["exact", "none", "larger", "smaller"])


def login(content_type: str, body: bytes, length: str) -> LoginForm | BadForm:
    headers = [(b"content-type", content_type.encode()), (b"accept", b"text/html")]
    declared = {"exact": len(body), "larger": len(body) + 10, "smaller": max(0, len(body) - 1)}
    if length in declared:
        headers.append((b"content-length", str(declared[length]).encode()))
    scope = {"type": "http", "method": "POST", "path": "/auth/login", "headers": headers}
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return asyncio.run(read_login_form(Request(scope, receive)))
    except BadForm as refusal:
        return refusal


@given(bodies, lengths)
@example((JSON, as_json([("username", "a"), ("password", "p"), ("username", "b")])), "exact")
@example((MULTIPART, b"--b0undary\r\nContent-Disposition: form-data; filename=x\r\n\r\n"), "none")
def test_a_login_body_gives_credentials_or_bad_form(body: tuple[str, bytes], length: str) -> None:
    result = login(*body, length)
    event(type(result).__name__)
    if isinstance(result, BadForm):
        assert result.status in (400, 413)
        assert PASSWORD not in result.description
    else:
        assert isinstance(result.username, str) and isinstance(result.password, str)
        assert result.next_path is None or result.next_path == safe_next(result.next_path)
