"""A reload adds and removes sign-in providers without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.configs import route
from tests.tokenservice.conftest_oidc import Sso, sso_site
from tests.waiting import eventually


@pytest.fixture
def sso(tmp_path: Path) -> Iterator[Sso]:
    with sso_site(tmp_path / "site") as site:
        yield site


def start_status(sso: Sso, name: str) -> int:
    return httpx.get(f"{sso.url}/auth/oidc/{name}/start").status_code


def test_a_provider_added_by_a_reload_signs_in_and_a_removed_one_is_gone(sso: Sso) -> None:
    path = sso.gateway.config_path
    document = yaml.safe_load(path.read_text())
    providers = document["login"]["providers"]
    providers.append({**providers[0], "name": "other", "client_id": "other"})
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    def discovered() -> int:
        status = start_status(sso, "other")
        assert status == 302, status
        return status

    eventually(discovered, timeout=10)
    with httpx.Client(timeout=10) as browser:
        assert sso.sign_in(browser, "alice", name="other").status_code == 303
    providers.pop()
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    def removed() -> int:
        status = start_status(sso, "other")
        assert status == 404, status
        return status

    eventually(removed, timeout=10)
    assert start_status(sso, "corp") == 302


def test_a_reload_that_only_moves_a_provider_keeps_it_discovered(sso: Sso) -> None:
    # A provider is the same provider wherever it stands in the file: rediscovering it on
    # every edit would leave sign-in down while its IdP is, for no change of it.
    path = sso.gateway.config_path
    assert start_status(sso, "corp") == 302
    discovered = sso.gateway.stderr().count("provider corp discovered")
    reloads = sso.gateway.stderr().count("configuration reloaded")
    document = yaml.safe_load(path.read_text())
    document["routes"].append(route("added", "/added", "http://127.0.0.1:9"))
    path.write_text("# three lines\n# above the\n# providers\n" + yaml.safe_dump(document))

    eventually(lambda: sso.gateway.stderr().count("configuration reloaded") > reloads, timeout=10)
    time.sleep(1)  # a provider built anew would be discovered within this (a loopback IdP)
    assert sso.gateway.stderr().count("provider corp discovered") == discovered
    assert start_status(sso, "corp") == 302
