"""The benchmark's generated configuration stays valid as the validator evolves."""

from __future__ import annotations

from pathlib import Path

from bench.fixture import write_gateway_config
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
