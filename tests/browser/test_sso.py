"""Single sign-on in Chromium: from a protected page through a real provider's login and back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.tokenservice.conftest_oidc import Sso, sso_site


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    with sso_site(tmp_path_factory.mktemp("browser-sso")) as site:
        yield site


def sign_in_at_provider(page: Page, username: str) -> None:
    """Fill the provider's own login page (any password) as a person would."""
    page.wait_for_selector('input[name="login"]')
    page.fill('input[name="login"]', username)
    page.fill('input[name="password"]', "any password")
    page.click("button[type=submit]")


def body_json(page: Page) -> dict[str, str]:
    return dict(json.loads(page.inner_text("body")))


def test_a_protected_page_leads_through_the_provider_and_back(sso: Sso, page: Page) -> None:
    page.goto(f"{sso.url}/api/whoami")
    assert "/auth/login?next=" in page.url
    assert page.locator("#password").count() == 0  # no users section: buttons only
    page.click("text=Sign in with corp")
    sign_in_at_provider(page, "alice")
    page.wait_for_url(f"{sso.url}/api/whoami")
    me = body_json(page)
    assert me["subject"] == "alice"
    assert me["scopes"] == "orders:read orders:write"


def test_two_tabs_signing_in_at_once_both_arrive(sso: Sso, context: BrowserContext) -> None:
    first, second = context.new_page(), context.new_page()
    first.goto(f"{sso.url}/auth/oidc/corp/start?next=/api/whoami?tab=1")
    second.goto(f"{sso.url}/auth/oidc/corp/start?next=/api/whoami?tab=2")
    sign_in_at_provider(second, "alice")
    sign_in_at_provider(first, "alice")
    first.wait_for_url(f"{sso.url}/api/whoami?tab=1")
    second.wait_for_url(f"{sso.url}/api/whoami?tab=2")
    assert body_json(first)["subject"] == body_json(second)["subject"] == "alice"
