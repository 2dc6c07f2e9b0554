"""The sign-in page with single sign-on: a link per provider, the form only with users."""

from __future__ import annotations

from gateway.tokenservice.pages import render_page


def test_each_provider_gets_a_link_carrying_next() -> None:
    page = render_page(next_path="/a b", providers=("corp", "google"))
    assert 'href="/auth/oidc/corp/start?next=/a%20b"' in page
    assert 'href="/auth/oidc/google/start?next=/a%20b"' in page


def test_the_password_form_stays_with_users() -> None:
    assert 'name="password"' in render_page(providers=("corp",), password_form=True)


def test_the_password_form_goes_without_users() -> None:
    page = render_page(next_path="/x", providers=("corp",), password_form=False)
    assert 'name="password"' not in page
    assert 'name="next" value="/x"' in page  # the silent refresh still knows where to go


def test_a_provider_name_is_escaped() -> None:
    assert "<script>" not in render_page(providers=("<script>",))
