"""Fixtures of the fault suite: a real upstream and gateways with the token service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.upstream import ServerThread, Upstream


@pytest.fixture
def upstream_port() -> Iterator[int]:
    """A real upstream (tests/upstream.py) on a free port."""
    port = free_port()
    with ServerThread(Upstream(), port):
        yield port
