"""Pages of other origins, in a real Chromium: refused unless they are a configured CORS origin.

The other origin is another port on 127.0.0.1: the same *site* as the gateway, so the browser
attaches even its ``SameSite=Strict`` cookies, and only the gateway's Origin checks refuse.
"""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, Site, sign_in

# A page script posting a form to another origin, as an attacker's page would.
SUBMIT_FORM = """([action, fields]) => {
  const form = Object.assign(document.createElement('form'), {method: 'post', action});
  for (const [name, value] of Object.entries(fields)) {
    form.append(Object.assign(document.createElement('input'), {name, value}));
  }
  document.body.append(form);
  form.submit();
}"""


def cookie(context: BrowserContext, name: str) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == name), None)


def signed_in(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/auth/login")
    assert sign_in(page) == 200


def test_a_form_on_another_origin_cannot_sign_in(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(cookie_site.other_origin)
    fields = {"username": "demo", "password": PASSWORD}
    with page.expect_response(lambda answer: "/auth/login" in answer.url) as answer:
        page.evaluate(SUBMIT_FORM, [f"{cookie_site.url}/auth/login", fields])
    assert answer.value.status == 403
    expect(page.get_by_role("alert")).to_contain_text(f"Sign in at {cookie_site.url}/auth/login")
    assert cookie(context, "gw_refresh") is None


def test_a_script_on_another_origin_cannot_sign_in(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(cookie_site.other_origin)
    outcome = page.evaluate(
        """async ([base, password]) => {
          const form = new URLSearchParams({username: 'demo', password});
          // An opaque answer can still set cookies: the gateway must refuse the request itself.
          await fetch(base + '/auth/login', {method: 'POST', mode: 'no-cors',
                                              credentials: 'include', body: form});
          try {
            await fetch(base + '/auth/login', {method: 'POST', credentials: 'include',
              headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({username: 'demo', password})});
            return 'read';
          } catch { return 'blocked'; }
        }""",
        [cookie_site.url, PASSWORD],
    )
    assert outcome == "blocked"  # no CORS answer for this origin
    assert cookie(context, "gw_refresh") is None
    assert 403 in cookie_site.statuses("/auth/login")


def test_another_origin_cannot_refresh_the_session(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    signed_in(page, cookie_site)
    before = cookie(context, "gw_refresh")
    refused = cookie_site.statuses("/auth/refresh", at_least=0).count(403)
    page.goto(cookie_site.other_origin)
    page.evaluate(
        """async base => {
          await fetch(base + '/auth/refresh', {method: 'POST', mode: 'no-cors',
                                                credentials: 'include'});
          await fetch(base + '/auth/refresh', {method: 'POST', credentials: 'include'})
            .catch(() => null);
        }""",
        cookie_site.url,
    )
    assert cookie_site.statuses("/auth/refresh", at_least=refused + 2).count(403) == refused + 2
    assert cookie(context, "gw_refresh") == before  # not rotated


def test_another_origin_cannot_post_with_the_access_cookie(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    signed_in(page, cookie_site)
    assert cookie(context, "gw_access")
    logged = len(cookie_site.statuses("/api/orders", at_least=0))
    page.goto(cookie_site.other_origin)
    with page.expect_response(lambda answer: "/api/orders" in answer.url) as answer:
        page.evaluate(SUBMIT_FORM, [f"{cookie_site.url}/api/orders", {"item": "forged"}])
    assert answer.value.status == 403
    assert cookie_site.last_status("/api/orders", after=logged) == 403
    assert cookie_site.access_log("/api/orders")[-1]["upstream_status"] is None  # never sent


def test_an_allowed_cors_origin_signs_in_refreshes_and_posts_with_credentials(
    cookie_site: Site, context: BrowserContext, page: Page
) -> None:
    page.goto(cookie_site.cors_origin)
    outcome = page.evaluate(
        """async ([base, password]) => {
          const json = {'Content-Type': 'application/json'};
          const login = await fetch(base + '/auth/login', {method: 'POST',
            credentials: 'include', headers: json, body: JSON.stringify({username: 'demo', password})});
          const token = (await login.json()).access_token;
          const refresh = await fetch(base + '/auth/refresh', {method: 'POST',
                                                               credentials: 'include'});
          const order = await fetch(base + '/api/orders', {method: 'POST', credentials: 'include',
            headers: json, body: JSON.stringify({item: 'tea'})});
          const bearer = await fetch(base + '/api/whoami', {
            headers: {Authorization: 'Bearer ' + token}});
          return [login.status, typeof token, refresh.status, order.status,
                  (await order.json()).by, bearer.status];
        }""",
        [cookie_site.url, PASSWORD],
    )
    assert outcome == [200, "string", 200, 201, "demo", 200]
    assert cookie(context, "gw_refresh") and cookie(context, "gw_access")


# A page script opening a WebSocket: 'open' with the first message, 'refused' otherwise.
OPEN_SOCKET = """(url) => new Promise((resolve) => {
  const socket = new WebSocket(url);
  socket.onmessage = () => { socket.close(); resolve('open'); };
  socket.onerror = () => resolve('refused');
  socket.onclose = () => resolve('refused');
  setTimeout(() => resolve('timeout'), 5000);
})"""


def test_a_page_on_another_origin_cannot_open_a_websocket_with_the_users_cookie(
    cookie_site: Site, page: Page
) -> None:
    signed_in(page, cookie_site)
    live = cookie_site.url.replace("http://", "ws://") + "/api/live"
    # The same script on the gateway's own origin gets in with the access cookie alone...
    assert page.evaluate(OPEN_SOCKET, live) == "open"
    # ...and from another origin, with the same cookie attached by the browser, it does not.
    page.goto(cookie_site.other_origin)
    assert page.evaluate(OPEN_SOCKET, live) == "refused"
