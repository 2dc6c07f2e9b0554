"""The demo app's live messages: a WebSocket through the gateway, in a real Chromium.

The app offers its access token as a ``bearer.`` subprotocol entry beside its own ``live``
(a browser cannot set ``Authorization`` on a WebSocket); the gateway closes the socket with
1008 when the token expires (the app reconnects with its next token) and when the session ends.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import EXPIRY, Site
from tests.browser.test_spa import load_orders, open_app, sign_in


def test_the_app_shows_live_messages_from_the_upstream(page: Page, bearer_site: Site) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    page.click("#go-live")
    expect(page.locator("#live-state")).to_have_text("Connected.")
    expect(page.locator("#live-messages li").first).to_contain_text("for demo")
    expect(page.locator("#live-messages li").nth(1)).to_be_visible()  # they keep coming


def test_an_expired_token_closes_the_socket_and_the_app_reconnects(
    page: Page, bearer_site: Site
) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    page.click("#go-live")
    expect(page.locator("#live-state")).to_have_text("Connected.")
    expect(page.locator("#live-state")).to_have_text(
        "Closed by the gateway: token expired (1008).", timeout=EXPIRY * 1000
    )
    load_orders(page)  # a call after the expiry: 401, refresh, and the socket reopens
    expect(page.locator("#live-state")).to_have_text("Connected.")


def test_signing_out_closes_the_socket(page: Page, bearer_site: Site) -> None:
    open_app(page, bearer_site)
    sign_in(page)
    page.click("#go-live")
    expect(page.locator("#live-state")).to_have_text("Connected.")
    page.click("#sign-out")
    expect(page.locator("#live-state")).to_have_text(
        "Closed by the gateway: session revoked (1008).", timeout=1_500
    )
