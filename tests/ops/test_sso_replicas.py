"""Back-channel logout posted to one replica ends the session on every replica within a second."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.oidc_provider import provider_login, provider_logout
from tests.ops.test_replicas import _cleanup, _store_url
from tests.tokenservice.conftest_oidc import Sso, sso_site
from tests.waiting import eventually


@pytest.fixture(params=["redis", "postgres"])
def replicated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sso]:
    store, handle = _store_url(request.param)
    try:
        with sso_site(tmp_path / uuid.uuid4().hex, store=store, replicas=2) as site:
            yield site
    finally:
        _cleanup(request.param, handle)


def test_backchannel_logout_at_one_replica_refuses_the_token_at_the_other(
    replicated: Sso,
) -> None:
    other = replicated.replicas[0]
    with httpx.Client(timeout=10) as browser:
        assert replicated.sign_in(browser, "alice").status_code == 303
        access = browser.cookies["gw_access"]
        bearer = {"authorization": f"Bearer {access}"}
        assert httpx.get(f"{other.url}/api/whoami", headers=bearer).status_code == 200
        provider_logout(browser, replicated.provider.issuer)  # posts to the first replica

    def refused() -> httpx.Response:
        answer = httpx.get(f"{other.url}/api/whoami", headers=bearer)
        assert answer.status_code == 401
        return answer

    eventually(refused, timeout=1.5)


def test_a_flow_started_at_one_replica_completes_once_at_another(replicated: Sso) -> None:
    other = replicated.replicas[0]
    with httpx.Client(timeout=10) as browser:
        start = browser.get(f"{replicated.url}/auth/oidc/corp/start", params={"next": "/x"})
        callback = provider_login(browser, start.headers["location"], "alice")
        at_other = callback.replace(replicated.url, other.url)
        flow_cookies = {k: v for k, v in browser.cookies.items() if k.startswith("gw_oidc_")}
        answer = browser.get(at_other)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/x"
    with httpx.Client(timeout=10, cookies=flow_cookies) as thief:
        assert thief.get(callback).status_code == 400  # the first replica knows it is used
