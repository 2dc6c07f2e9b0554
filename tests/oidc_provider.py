"""A real OpenID provider for the tests: panva's certified ``oidc-provider`` run by Node.js.

``tests/oidc_provider/`` holds its ``package.json``, ``package-lock.json`` and ``server.mjs``;
``npm ci`` installs it when ``node_modules`` is missing. Without ``node`` (or ``npm``) the tests
that need it skip with the reason, except under ``CI=true`` where that fails them.

``provider_login`` drives the provider's development login page with a plain HTTP client the way
a browser would (any password is accepted), and hands back the redirect to the gateway's
callback without following it, so a test can send it, tamper with it, or send it twice.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

FOLDER = Path(__file__).parent / "oidc_provider"
SECRET = "test-client-secret"


def need_node() -> str:
    """The ``node`` binary, with the provider's packages installed; skip (fail in CI) without."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "Node.js is not installed (apt-get install -y nodejs npm): no OpenID provider"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true .ci/run must install it")
        pytest.skip(reason)
    if not (FOLDER / "node_modules" / "oidc-provider").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=FOLDER,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {FOLDER}:\n{done.stderr[-2000:]}")
    return node


def client(gateway_url: str, *, client_id: str = "gateway", name: str = "corp") -> dict[str, Any]:
    """A client registration for a gateway at ``gateway_url`` with provider entry ``name``."""
    return {
        "client_id": client_id,
        "client_secret": SECRET,
        "redirect_uris": [f"{gateway_url}/auth/oidc/{name}/callback"],
        "backchannel_logout_uri": f"{gateway_url}/auth/oidc/{name}/backchannel-logout",
        "backchannel_logout_session_required": True,
        "post_logout_redirect_uris": [f"{gateway_url}/"],
    }


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen[str]


@contextmanager
def run_provider(
    clients: Sequence[dict[str, Any]], *, id_token_ttl: int = 3600, port: int = 0
) -> Iterator[Provider]:
    """The provider on 127.0.0.1 (an ephemeral port unless given) with these clients."""
    node = need_node()
    settings = json.dumps({"clients": list(clients), "idTokenTtl": id_token_ttl, "port": port})
    process = subprocess.Popen(
        [node, "server.mjs", settings],
        cwd=FOLDER,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("OIDC_PROVIDER_LOG") else subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"the OpenID provider did not start: {line!r}")
        yield Provider(line.split()[1], process)
    finally:
        process.terminate()
        process.wait(10)


_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def provider_login(http: httpx.Client, authorize_url: str, username: str) -> str:
    """Sign ``username`` in at the provider from ``authorize_url``; the redirect to the gateway.

    Follows the provider's own redirects, fills its login form (and any confirmation form),
    and returns the first ``Location`` that leaves the provider."""
    provider = httpx.URL(authorize_url)
    url = authorize_url
    response = http.get(url)
    for _ in range(12):
        if response.is_redirect:
            url = urljoin(url, response.headers["location"])
            if httpx.URL(url).port != provider.port:
                return url
            response = http.get(url)
            continue
        match = _ACTION.search(response.text)
        if response.status_code != 200 or match is None:
            raise AssertionError(
                f"unexpected provider page {response.status_code}: {response.text[:500]}"
            )
        action = urljoin(url, html.unescape(match.group(1)))
        if 'name="login"' in response.text:
            form = {"prompt": "login", "login": username, "password": "any"}
        else:
            form = {"prompt": "consent"}
        response = http.post(action, data=form)
        url = action
    raise AssertionError("the provider never redirected back")


def provider_logout(http: httpx.Client, issuer: str) -> None:
    """End the provider session of ``http``'s cookies (RP-less logout, confirmed): the provider
    then posts back-channel logout tokens to every client of that session."""
    response = http.get(f"{issuer}/session/end")
    match = _ACTION.search(response.text)
    assert match, response.text[:500]
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', response.text)
    form = {"logout": "yes", **({"xsrf": xsrf.group(1)} if xsrf else {})}
    http.post(urljoin(f"{issuer}/", html.unescape(match.group(1))), data=form)
