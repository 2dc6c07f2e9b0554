"""Plain navigations with ``tokens.access_cookie``: to sign in, back to the page, and on."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import EXPIRY, Site, sign_in


def test_a_navigation_to_a_protected_page_signs_in_and_comes_back(
    cookie_site: Site, page: Page
) -> None:
    page.goto(f"{cookie_site.url}/api/whoami?tab=2")
    assert page.url == f"{cookie_site.url}/auth/login?next=%2Fapi%2Fwhoami%3Ftab%3D2"
    assert sign_in(page) == 303
    assert page.url == f"{cookie_site.url}/api/whoami?tab=2"
    assert '"subject":"demo"' in page.content()


@pytest.mark.parametrize(
    "next_value",
    [
        pytest.param("https://evil.example/", id="absolute URL"),
        pytest.param("//evil.example", id="scheme-relative URL"),
        pytest.param("/\\evil.example", id="backslash"),
    ],
)
def test_a_next_pointing_to_another_site_lands_on_the_root(
    cookie_site: Site, page: Page, next_value: str
) -> None:
    page.goto(f"{cookie_site.url}/auth/login?next={next_value}")
    assert sign_in(page) == 303
    assert page.url == f"{cookie_site.url}/"


def test_an_expired_access_cookie_is_renewed_from_the_refresh_cookie_without_signing_in(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    assert sign_in(page) == 200
    time.sleep(EXPIRY)
    assert "gw_access" not in {c["name"] for c in context.cookies()}  # gone with its token
    with page.expect_response(lambda answer: "/auth/refresh" in answer.url) as refresh:
        page.goto(f"{cookie_site.url}/api/whoami")
        page.wait_for_url(f"{cookie_site.url}/api/whoami")
    assert refresh.value.status == 200
    assert '"subject":"demo"' in page.content()


def test_a_revoked_access_cookie_sends_a_navigation_to_sign_in(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    assert sign_in(page) == 200
    access = next(c for c in context.cookies() if c["name"] == "gw_access")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{cookie_site.url}/auth/login")
    # A copy of the cookie outlived the sign-out (another profile, a restored backup): the
    # navigation is sent to sign in rather than shown a JSON 401.
    context.add_cookies([{**access, "expires": time.time() + 60}])  # type: ignore[typeddict-item]
    page.goto(f"{cookie_site.url}/api/whoami")
    assert page.url.startswith(f"{cookie_site.url}/auth/login?next=")
    expect(page.locator("#password")).to_be_visible()
