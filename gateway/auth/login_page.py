"""The HTML sign-in page (``GET /auth/login``): one small self-contained document.

No scripts and no external assets, so the Content-Security-Policy can forbid everything but
the page's own inline style (allowed by its hash) and form posts to the gateway itself;
``frame-ancestors 'none'`` stops the page being framed for clickjacking. Every value placed in
the page is HTML-escaped, and ``next`` is only ever a same-origin path (``safe_next``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from urllib.parse import urlsplit

__all__ = ["PAGE_HEADERS", "render_page", "safe_next"]

MAX_NEXT = 2048
# Whitespace, controls, the backslash, and what RFC 3986 never allows unescaped in a URL.
_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f-\x9f\\\"<>`]")

_STYLE = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:grid;place-items:center;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f4f5f7;color:#1d2330}
main{width:min(22rem,92vw);background:#fff;padding:2rem;border-radius:12px;
box-shadow:0 1px 3px rgba(0,0,0,.12),0 8px 24px rgba(0,0,0,.06)}
h1{margin:0 0 1.25rem;font-size:1.4rem}
label{display:block;margin:.9rem 0 .3rem;font-weight:600}
input{width:100%;padding:.6rem .7rem;font:inherit;border:1px solid #b8bfcc;border-radius:8px}
input:focus{outline:3px solid #8db4ff;outline-offset:1px;border-color:#2f6fed}
button{margin-top:1.4rem;width:100%;padding:.7rem;font:inherit;font-weight:600;
color:#fff;background:#2f6fed;border:0;border-radius:8px;cursor:pointer}
button:hover{background:#245bd0}
button:focus-visible{outline:3px solid #8db4ff;outline-offset:2px}
.message{margin:0 0 1rem;padding:.6rem .8rem;border-radius:8px;background:#fdecec;color:#8a1c1c}
.message.ok{background:#e9f7ef;color:#17603a}
@media (prefers-color-scheme:dark){
body{background:#14171d;color:#e6e9ef}main{background:#1e232b;box-shadow:none}
input{background:#14171d;color:inherit;border-color:#4a5363}
.message{background:#3b1f22;color:#ffc9c9}.message.ok{background:#16311f;color:#b7ebc9}}
"""

_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

PAGE_HEADERS = {
    "content-security-policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

_FORM = """<form method="post" action="/auth/login">{next_field}
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none"
 spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>"""


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path on this origin (``/x?y``), else None.

    Refused: absolute URLs, scheme-relative ``//host`` and ``/\\host`` (browsers read a
    backslash as a slash), anything with whitespace, control characters or characters a URL
    never holds unescaped (double quote, angle brackets, backtick), and overlong values.
    An open redirect after login would hand a phishing site a trusted-looking link.
    """
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return None
    if value.startswith("//") or _UNSAFE_NEXT.search(value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def render_page(
    *, next_path: str | None = None, message: str | None = None, form: bool = True
) -> str:
    """The sign-in page, with an optional message (an error, or a success when ``form`` is off)."""
    notice = ""
    if message:
        kind = "message" if form else "message ok"
        notice = f'<p class="{kind}" role="alert">{html.escape(message)}</p>\n'
    body = ""
    if form:
        next_field = ""
        if next_path:
            next_field = f'\n<input type="hidden" name="next" value="{html.escape(next_path)}">'
        body = _FORM.format(next_field=next_field)
    title = "Sign in" if form else "Signed in"
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{title}</h1>\n{notice}{body}\n</main>\n</body>\n</html>\n"
    )
