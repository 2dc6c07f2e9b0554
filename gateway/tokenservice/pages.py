"""The gateway's HTML pages: sign-in (``GET /auth/login``) and signed-in, self-contained.

No external assets, and one small inline script, so the Content-Security-Policy can forbid
everything but the page's own inline style and script (each allowed by its hash), requests and
form posts to the gateway itself; ``frame-ancestors 'none'`` stops the page being framed for
clickjacking. Every value placed in the page is HTML-escaped, and ``next`` is only ever a
same-origin path (``safe_next``).

Why ``Referrer-Policy: same-origin`` and not ``no-referrer``: a browser derives the ``Origin``
of a form post from the page's referrer policy, and under ``no-referrer`` it sends
``Origin: null``, which the cross-site check must refuse (it cannot be told from a sandboxed
attacker frame). ``same-origin`` sends the real origin to the gateway itself and nothing, not
even a ``Referer``, to any other site.

The script only makes the page quicker, never needed: when the page was reached on the way to
``next`` (a navigation sent to sign in, typically because the access cookie expired), it asks
``/auth/refresh`` once for a new access token from the refresh cookie and, if that works, goes
straight on to ``next``. Without JavaScript the form works as before.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from urllib.parse import quote, urlsplit

__all__ = ["PAGE_HEADERS", "render_page", "render_signed_in", "safe_next"]

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
a.provider{display:block;margin-top:.8rem;padding:.7rem;text-align:center;font-weight:600;
color:#2f6fed;border:1px solid #2f6fed;border-radius:8px;text-decoration:none}
a.provider:focus-visible{outline:3px solid #8db4ff;outline-offset:2px}
button.secondary{color:#2f6fed;background:transparent;border:1px solid #2f6fed}
button:focus-visible{outline:3px solid #8db4ff;outline-offset:2px}
.message{margin:0 0 1rem;padding:.6rem .8rem;border-radius:8px;background:#fdecec;color:#8a1c1c}
.message.ok{background:#e9f7ef;color:#17603a}
@media (prefers-color-scheme:dark){
body{background:#14171d;color:#e6e9ef}main{background:#1e232b;box-shadow:none}
input{background:#14171d;color:inherit;border-color:#4a5363}
.message{background:#3b1f22;color:#ffc9c9}.message.ok{background:#16311f;color:#b7ebc9}}
"""

# A refresh that worked and still led back here within 10 s means the gateway refuses the new
# token: the tab then stays on the form (sessionStorage) instead of going round in a loop.
_SCRIPT = """
(function(){var n=document.querySelector('input[name="next"]');if(!n||!window.fetch)return;
var k='gateway-silent-refresh',s=window.sessionStorage;
if(Date.now()-Number(s.getItem(k)||0)<10000)return;
fetch('/auth/refresh',{method:'POST',credentials:'same-origin',headers:{Accept:'application/json'}})
.then(function(r){if(r.ok){s.setItem(k,String(Date.now()));location.replace(n.value);}})
.catch(function(){});})();
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


PAGE_HEADERS = {
    "content-security-policy": (
        f"default-src 'none'; style-src 'sha256-{_sha256(_STYLE)}'; "
        f"script-src 'sha256-{_sha256(_SCRIPT)}'; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
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

_SIGN_OUT = """<form method="post" action="/auth/logout">
<button type="submit" class="secondary">Sign out</button>
</form>"""


def safe_next(value: str | None) -> str | None:
    """Where to go after signing in: ``value`` when it is a path on this origin, else ``/``.

    None only when there is no ``value`` at all. Refused (replaced by ``/``): absolute URLs,
    scheme-relative ``//host`` and ``/\\host`` (browsers read a backslash as a slash), anything
    with whitespace, control characters or characters a URL never holds unescaped (double
    quote, angle brackets, backtick), and overlong values. An open redirect after login would
    hand a phishing site a trusted-looking link.
    """
    if not value:
        return None
    if len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or _UNSAFE_NEXT.search(value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def render_page(
    *,
    next_path: str | None = None,
    message: str | None = None,
    silent_refresh: bool = False,
    providers: tuple[str, ...] = (),
    password_form: bool = True,
) -> str:
    """The sign-in page, with an optional error ``message`` above the form.

    ``providers`` each get a "Sign in with" link that starts single sign-on and carries
    ``next``; the password form is left out when ``password_form`` is false.
    ``silent_refresh`` adds the script that resumes a session from the refresh cookie."""
    notice = f'<p class="message" role="alert">{html.escape(message)}</p>\n' if message else ""
    next_field = ""
    if next_path:
        next_field = f'\n<input type="hidden" name="next" value="{html.escape(next_path)}">'
    form = _FORM.format(next_field=next_field) if password_form else next_field.lstrip("\n")
    query = f"?next={quote(next_path, safe='/')}" if next_path else ""
    links = "".join(
        f'\n<a class="provider" href="/auth/oidc/{quote(name)}/start{html.escape(query)}">'
        f"Sign in with {html.escape(name)}</a>"
        for name in providers
    )
    return _document(
        "Sign in", notice + form + links, script=silent_refresh and next_path is not None
    )


def render_signed_in(sub: str) -> str:
    """The page a browser sees after signing in without a ``next``: who, and a way out."""
    who = html.escape(sub)
    notice = f'<p class="message ok" role="status">You are signed in as <b>{who}</b>.</p>\n'
    return _document("Signed in", notice + _SIGN_OUT, script=False)


def _document(title: str, body: str, *, script: bool) -> str:
    tag = f"<script>{_SCRIPT}</script>\n" if script else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{title}</h1>\n{body}\n</main>\n{tag}</body>\n</html>\n"
    )
