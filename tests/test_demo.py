"""What `make run` serves: the demo route table and the demo upstream with its SPA."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from examples.demo_upstream import SPA, app
from gateway.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_serves_the_spa_through_a_public_route() -> None:
    config = load_config(ROOT / "routes.yaml", {})
    spa = next(route for route in config.routes if route.path == "/app")
    assert spa.auth == "public"
    assert config.tokens.access_cookie is not None  # navigations go to sign in and back


async def test_the_demo_upstream_serves_the_spa_under_its_content_security_policy() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo"
    ) as client:
        moved = await client.get("/app")
        page = await client.get("/app/")
        script = await client.get("/app/app.js")
    assert moved.status_code == 308 and moved.headers["location"] == "/app/"
    assert page.status_code == 200 and "<title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "/auth/refresh" in script.text


@pytest.mark.parametrize("name", ["index.html", "app.js", "app.css"])
def test_the_spa_loads_nothing_from_another_origin(name: str) -> None:
    text = (SPA / name).read_text()
    assert not re.search(r"https?://", text)
