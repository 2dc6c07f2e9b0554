"""The demo single-page app (``examples/spa/``) behind the gateway, in a real Chromium.

The gateway here has no access cookie: the app's bearer header, held in a JavaScript variable,
is its only way in, and the refresh cookie its only way to a new token.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response, Route, expect

from tests.browser.conftest import EXPIRY, PASSWORD, USERS, Site

TAB_PASSWORD = USERS["tab"][0]


def open_app(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/app/")
    expect(page.locator("#signed-in, #signed-out").locator("visible=true")).to_have_count(1)


def sign_in(page: Page, username: str = "demo", password: str = PASSWORD) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in button")
    expect(page.locator("#sub")).to_have_text(username)


class Calls:
    """What one page's requests to the gateway got back, in order: ``(method, path, status)``."""

    def __init__(self, page: Page, site: Site) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self._origin = site.url
        page.on("response", self._record)

    def _record(self, response: Response) -> None:
        if response.url.startswith(self._origin) and "/app/" not in response.url:
            path = response.url.removeprefix(self._origin)
            self.seen.append((response.request.method, path, response.status))

    def since(self, mark: int) -> list[tuple[str, str, int]]:
        return self.seen[mark:]


def load_orders(page: Page) -> None:
    """Press "Load orders" and wait for this press's result, not an earlier one's."""
    page.evaluate("document.getElementById('status').textContent = ''")
    page.click("#load")
    expect(page.locator("#status")).to_contain_text("order(s) loaded")


RACE_ATTEMPTS = 3


def refreshes(calls: Calls) -> list[int]:
    """The statuses of the tab's refreshes, so far."""
    return [status for method, path, status in calls.seen if path == "/auth/refresh"]


def grace_answers(site: Site) -> float:
    """How many refreshes the gateway answered within the reuse grace, so far."""
    metrics = httpx.get(f"{site.gateway.admin_url}/metrics").text
    pattern = r'^gateway_refreshes_total\{outcome="grace"\} (\S+)$'
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def bearer_of(page: Page, action: str) -> str:
    """The access token the app sends with the API call that ``action`` (a selector) starts."""
    with page.expect_request(lambda r: "/api/" in r.url) as request:
        page.click(action)
    return request.value.headers["authorization"].removeprefix("Bearer ")


def test_the_spa_signs_in_calls_refreshes_silently_and_signs_out(
    bearer_site: Site, context: BrowserContext, page: Page, tmp_path: Path
) -> None:
    calls = Calls(page, bearer_site)
    open_app(page, bearer_site)
    sign_in(page)
    expect(page.locator("#orders li")).not_to_have_count(0)
    page.screenshot(path=tmp_path / "spa-signed-in.png")

    # The token expires; the next call is refused once, refreshed silently and made again.
    time.sleep(EXPIRY)
    mark = len(calls.seen)
    load_orders(page)
    assert calls.since(mark) == [
        ("GET", "/api/orders", 401),
        ("POST", "/auth/refresh", 200),
        ("GET", "/api/orders", 200),
    ]
    token = bearer_of(page, "#load")
    refresh_token = next(c["value"] for c in context.cookies() if c["name"] == "gw_refresh")

    page.click("#sign-out")
    expect(page.locator("#status")).to_have_text("You are signed out.")
    expect(page.locator("#sign-in")).to_be_visible()
    page.screenshot(path=tmp_path / "spa-signed-out.png")
    # The last access token and refresh token are dead, even presented again.
    status = page.evaluate(
        "t => fetch('/api/orders', {headers: {Authorization: 'Bearer ' + t}}).then(r => r.status)",
        token,
    )
    assert status == 401
    context.add_cookies(
        [{"name": "gw_refresh", "value": refresh_token, "url": bearer_site.url + "/auth"}]
    )
    assert page.evaluate("fetch('/auth/refresh', {method: 'POST'}).then(r => r.status)") == 401


def test_the_access_token_is_kept_in_memory_only(bearer_site: Site, page: Page) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    token = bearer_of(page, "#load")
    stored = page.evaluate(
        "JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}])"
    )
    assert token not in stored
    # A reload forgets it; the refresh cookie brings a new one without signing in again.
    page.reload()
    expect(page.locator("#sub")).to_have_text("demo")
    assert bearer_of(page, "#load") != token


def test_a_wrong_password_is_shown_in_the_spa(bearer_site: Site, page: Page) -> None:
    open_app(page, bearer_site)
    page.fill("#username", "demo")
    page.fill("#password", "not-the-password")
    page.click("#sign-in button")
    expect(page.locator("#status")).to_have_text("Wrong username or password.")


def test_two_tabs_refreshing_at_once_both_stay_signed_in(
    bearer_site: Site, context: BrowserContext
) -> None:
    first, second = context.new_page(), context.new_page()
    open_app(first, bearer_site)
    sign_in(first, "tab", TAB_PASSWORD)
    open_app(second, bearer_site)  # signed in from the refresh cookie, on its own token
    expect(second.locator("#sub")).to_have_text("tab")
    calls = [Calls(tab, bearer_site) for tab in (first, second)]

    # Both tabs refresh with the same cookie at the same moment: the browser holds the first
    # refresh until the second is on its way too, then lets both go. Chromium reads the cookie
    # from its store as each request leaves, after this hold, so on a loaded machine the first
    # answer's rotated cookie can still reach the second: then the two were one after the other
    # (also fine for the tabs, but not the race this test is about), and the race is run again.
    held: list[Route] = []

    def together(route: Route) -> None:
        held.append(route)
        if len(held) == 2:
            for each in held:
                each.continue_()

    context.route("**/auth/refresh", together)
    for _attempt in range(RACE_ATTEMPTS):
        graced = grace_answers(bearer_site)
        held.clear()
        refreshes_before = [refreshes(seen) for seen in calls]
        time.sleep(EXPIRY)
        at = first.evaluate("Date.now() + 300")
        for tab in (first, second):
            tab.evaluate("document.getElementById('status').textContent = ''")
        for tab in (first, second):
            tab.evaluate(
                "at => setTimeout(() => document.getElementById('load').click(), at - Date.now())",
                at,
            )
        for tab in (first, second):
            expect(tab.locator("#status")).to_contain_text("order(s) loaded")
        for seen, before in zip(calls, refreshes_before, strict=True):
            assert refreshes(seen)[len(before) :] == [200]
        assert "reuse detected" not in bearer_site.gateway.output()
        # One rotated the token; the other presented it a moment after: the grace answer.
        if grace_answers(bearer_site) == graced + 1:
            break
    else:
        pytest.fail(f"the two refreshes were not concurrent in {RACE_ATTEMPTS} attempts")
    context.unroute("**/auth/refresh", together)

    # Neither tab was taken for a thief: the session goes on in both.
    time.sleep(EXPIRY)
    for tab in (first, second):
        load_orders(tab)
        expect(tab.locator("#sub")).to_have_text("tab")


def test_signing_out_in_one_tab_ends_the_other_tabs_session_at_its_next_call(
    bearer_site: Site, context: BrowserContext
) -> None:
    first, second = context.new_page(), context.new_page()
    open_app(first, bearer_site)
    sign_in(first, "tab", TAB_PASSWORD)
    open_app(second, bearer_site)
    expect(second.locator("#sub")).to_have_text("tab")

    first.click("#sign-out")
    expect(first.locator("#status")).to_have_text("You are signed out.")
    # The second tab still holds an access token that has not expired: it is refused anyway.
    second.click("#load")
    expect(second.locator("#status")).to_have_text("Your session has ended; please sign in again.")
    expect(second.locator("#sign-in")).to_be_visible()
