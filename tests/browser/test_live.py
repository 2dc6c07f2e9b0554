"""The demo app's live messages: a WebSocket through the gateway, in a real Chromium.

The app offers its access token as a ``bearer.`` subprotocol entry beside its own ``live``
(a browser cannot set ``Authorization`` on a WebSocket); the gateway closes the socket with
1008 when the token expires (the app refreshes and reconnects) and when the session ends.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import EXPIRY, Site
from tests.browser.test_spa import open_app, sign_in


def test_the_app_shows_live_messages_from_the_upstream(page: Page, bearer_site: Site) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    expect(page.locator("#live-state")).to_have_text("Connected.")
    expect(page.locator("#live-messages li").first).to_contain_text("for demo")
    expect(page.locator("#live-messages li")).to_have_count(5, timeout=5_000)  # the newest five


def test_an_expired_token_closes_the_socket_and_the_app_reconnects(
    page: Page, bearer_site: Site
) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    expect(page.locator("#live-state")).to_have_text("Connected.")
    page.wait_for_timeout(EXPIRY * 1000)
    opened = [line for line in bearer_site.access_log("/api/live") if line["status"] == 101]
    assert any(line.get("close_code") == 1008 for line in opened)
    expect(page.locator("#live-state")).to_have_text("Connected.")  # again, with a new token


def test_signing_out_closes_the_socket(page: Page, bearer_site: Site) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    expect(page.locator("#live-state")).to_have_text("Connected.")
    page.click("#sign-out")
    expect(page.locator("#live-state")).to_have_text(
        "Closed by the gateway: session revoked (1008).", timeout=1_500
    )
