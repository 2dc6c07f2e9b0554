"""``python -m bench.run [--quick] [--profile]``: the whole benchmark, one table, one JSON file.

Installs wrk, nginx and haproxy from the system's packages when missing, runs every phase
(bench/phases.py) on loopback, prints the table with the targets of issues 5 and 16 as
PASS/FAIL lines under it, and saves the run in bench/results/<UTC timestamp>.json. Every
process it started is stopped on the way out, Ctrl-C and SIGTERM included. A missed target
never changes the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench import report, system, targets
from bench.fixture import BENCH_PATH
from bench.phases import REPO, Bench
from bench.plan import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy during an extra gateway c=50 run"
    )
    parser.add_argument("--seconds", type=float, help="wrk seconds per row (10; --quick 2)")
    parser.add_argument(
        "--gateway-python",
        help="the interpreter that runs the gateway (default: this one); `make bench` gives the "
        "compiled wheel's, .venv-compiled/bin/python",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never apt-get install wrk, nginx or haproxy"
    )
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.from_args(build_parser().parse_args(argv))
    started = time.time()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    tools = system.ensure_tools(settings.install)
    machine = system.describe_machine(REPO, tools)
    machine["gateway_build"] = system.gateway_build(settings.gateway_python)
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        bench = Bench(settings, tools, Path(folder))
        for name, found in tools.items():
            if found is None:
                bench.results.notes.append(f"{name} is not installed: its rows are skipped")
        try:
            bench.run()
        except KeyboardInterrupt:
            interrupted = True
            bench.results.notes.append("interrupted: the results are partial")
    machine["loadavg_after"] = system.loadavg()
    results = bench.results
    verdicts = targets.check(
        results.rows, results.streams, results.costs, results.bound, results.route_check
    )
    fixture = {
        "routes": bench.fixture.route_count,
        "algorithm": bench.fixture.algorithm,
        "path": BENCH_PATH,
    }
    report.print_run(
        results,
        verdicts,
        f"{fixture['routes']} routes, {fixture['algorithm']} tokens, GET {BENCH_PATH}",
        machine,
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    path = RESULTS / f"{stamp}{'-quick' if settings.quick else ''}.json"
    document = report.document(
        results,
        verdicts,
        settings=settings,
        machine=machine,
        fixture=fixture,
        started=started,
        finished=time.time(),
        interrupted=interrupted,
    )
    report.save(path, document)
    print(f"\nresults: {path.relative_to(REPO)} ({time.time() - started:.0f} s)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
