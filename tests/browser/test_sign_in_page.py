"""The gateway's own sign-in page (``GET /auth/login``), used by a real Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import MAX_FAILURES, PASSWORD, USERS, Site, sign_in


def refresh_cookie(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == "gw_refresh"), None)


def test_the_sign_in_form_signs_in(
    cookie_site: Site, context: BrowserContext, page: Page, tmp_path: Path
) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    page.screenshot(path=tmp_path / "sign-in.png")
    assert sign_in(page) == 200
    expect(page.locator("h1")).to_have_text("Signed in")
    expect(page.get_by_role("status")).to_have_text("You are signed in as demo.")
    assert refresh_cookie(context)


def test_the_sign_in_form_signs_in_without_javascript(cookie_site: Site, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{cookie_site.url}/auth/login?next=/api/whoami")
        assert sign_in(page) == 303
        assert page.url == f"{cookie_site.url}/api/whoami"
        assert '"subject":"demo"' in page.content()
    finally:
        context.close()


def test_a_wrong_password_shows_the_error_on_the_page(cookie_site: Site, page: Page) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    assert sign_in(page, password="not-the-password") == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.locator("#username")).to_be_visible()


def test_a_lockout_shows_when_to_retry(cookie_site: Site, page: Page) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    for _ in range(MAX_FAILURES):
        assert sign_in(page, username="locked", password="wrong") == 401
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    assert sign_in(page, username="locked", password=USERS["locked"][0]) == 429
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"Too many failed sign-ins\. Try again in \d+ s\.")
    )


def test_signing_out_from_the_signed_in_page_ends_the_session(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    sign_in(page)
    token = refresh_cookie(context)
    assert token
    logouts = len(cookie_site.statuses("/auth/logout", at_least=0))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert page.url == f"{cookie_site.url}/auth/login"
    expect(page.locator("#password")).to_be_visible()
    assert refresh_cookie(context) is None
    assert cookie_site.last_status("/auth/logout", after=logouts) == 303
    # The session itself is over, not just forgotten by this browser.
    context.add_cookies([{"name": "gw_refresh", "value": token, "url": cookie_site.url + "/auth"}])
    status = page.evaluate("fetch('/auth/refresh', {method: 'POST'}).then(r => r.status)")
    assert status == 401


def test_the_refresh_and_access_cookies_are_invisible_to_page_scripts(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    sign_in(page)
    names = {c["name"] for c in context.cookies()}
    assert {"gw_refresh", "gw_access"} <= names
    # A cookie a script may see is seen, on the very path the refresh cookie is scoped to.
    seen = page.evaluate("document.cookie = 'probe=1; path=/auth'; document.cookie")
    assert "probe=1" in seen
    assert "gw_refresh" not in seen and "gw_access" not in seen


def test_the_page_script_runs_under_the_pages_own_policy(cookie_site: Site, page: Page) -> None:
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    with page.expect_response(lambda answer: "/auth/refresh" in answer.url) as refresh:
        page.goto(f"{cookie_site.url}/auth/login?next=/api/whoami")
    assert refresh.value.status == 401  # no session in a new profile: the form stays
    expect(page.locator("#password")).to_be_visible()
    assert [p for p in problems if "Content Security Policy" in p] == []


def test_the_demo_password_never_reaches_the_log(cookie_site: Site, page: Page) -> None:
    page.goto(f"{cookie_site.url}/auth/login")
    sign_in(page)
    assert PASSWORD not in cookie_site.gateway.output()
