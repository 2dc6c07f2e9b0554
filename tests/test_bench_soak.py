"""``python -m bench.soak`` runs (a few seconds of it, so it cannot rot) and fails on a leak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.soak import verdict
from tests.conftest import ROOT


def _interval(index: int, rss: int, fds: int, **unexpected: int) -> dict[str, Any]:
    return {"index": index, "workers": {"1": {"rss": rss, "fds": fds}}, "unexpected": unexpected}


def test_a_short_soak_passes_and_saves_its_figures(tmp_path: Path) -> None:
    short = ["--minutes", "0.1", "--interval", "3", "--results", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", *short],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (saved,) = tmp_path.glob("soak-*.json")
    document = json.loads(saved.read_text())
    assert document["failures"] == []
    first = document["intervals"][0]
    assert len(first["workers"]) == 2
    assert {"200", "401", "400"} <= set(first["statuses"])
    assert "p99" in done.stdout and "PASS" in done.stdout


def test_rss_growing_past_ten_percent_fails() -> None:
    assert verdict([_interval(1, 100, 20), _interval(2, 109, 20)]) == []
    assert verdict([_interval(1, 100, 20), _interval(2, 111, 20)]) != []


def test_descriptors_growing_fail() -> None:
    assert verdict([_interval(1, 100, 20), _interval(2, 100, 60)]) != []


def test_an_unexpected_status_fails() -> None:
    (failure,) = verdict([_interval(1, 100, 20, **{"proxied 502": 3})])
    assert "proxied 502" in failure


def test_a_replaced_worker_fails() -> None:
    replaced = _interval(2, 100, 20)
    replaced["workers"] = {"2": {"rss": 100, "fds": 20}}
    assert verdict([_interval(1, 100, 20), replaced]) != []
