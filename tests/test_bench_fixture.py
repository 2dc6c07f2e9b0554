"""The benchmark measures what it says: its configuration loads, its cache-defeated row misses."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from bench.fixture import write_gateway_config
from bench.plan import Settings
from gateway.auth.verifier import Verifier
from gateway.config import load_config


def test_the_benchmark_routes_yaml_loads(tmp_path: Path) -> None:
    fixture = write_gateway_config(
        tmp_path,
        port=18000,
        admin_port=18001,
        upstream="http://127.0.0.1:18002",
        stream_upstream="http://127.0.0.1:18003",
    )
    config = load_config(fixture.config)
    assert len(config.routes) == 30


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_the_cache_defeated_row_sends_more_tokens_than_two_worker_caches_hold(quick: bool) -> None:
    # Fewer, and after one pass every request of the row would be a cache hit.
    settings = Settings.from_args(
        argparse.Namespace(quick=quick, seconds=None, no_install=True, profile=False)
    )
    cache_size = inspect.signature(Verifier).parameters["cache_size"].default
    assert settings.rotating_tokens > 2 * cache_size
