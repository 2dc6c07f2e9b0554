"""``python -m bench.websocket [--seconds S] [--idle N]``: the WebSocket rows of the benchmark.

- Relay throughput: 50 sockets, each sending a 1 KiB binary message and waiting for its echo,
  for ``S`` seconds, through the gateway (one worker) and to the same upstream directly;
  messages per second each way and the ratio (target: at least 40% of direct).
- Idle sockets: ``N`` (5,000) sockets opened through the gateway and left idle: the worker's
  RSS growth per socket (both legs; target at most 32 KiB) and its CPU while they idle
  (target under 2% of a core: no timer or task per socket).

The upstream is the ``websockets`` package's echo server in its own process, the clients run
in this one (uvloop). Everything runs on loopback on the same machine, so the load generator
competes with the gateway for the CPU: the ratio is a floor. Prints the rows and returns them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.fixture import write_gateway_config
from bench.procs import LOOPBACK, Processes, free_port, wait_for_port, wait_for_status

SOCKETS = 50
MESSAGE = os.urandom(1024)  # random: permessage-deflate gains nothing on either path
IDLE_SOCKETS = 5000
WS_PATH = "/ws-bench"

_UPSTREAM = """
import asyncio, resource, sys
from websockets.asyncio.server import serve
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:
        pass
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, max_size=None,
                     ping_interval=None):
        await asyncio.Future()
asyncio.run(main())
"""


def _raise_files_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _echo_rate(url: str, headers: dict[str, str], seconds: float) -> float:
    """Messages per second (each way) over ``SOCKETS`` sockets echoing ``MESSAGE``."""
    from websockets.asyncio.client import connect

    counts = [0] * SOCKETS
    stop = time.monotonic() + seconds

    async def one(index: int) -> None:
        async with connect(
            url, additional_headers=headers, compression=None, ping_interval=None
        ) as ws:
            await start.wait()
            while time.monotonic() < stop:
                await ws.send(MESSAGE)
                await ws.recv()
                counts[index] += 1

    start = asyncio.Event()
    tasks = [asyncio.create_task(one(i)) for i in range(SOCKETS)]
    await asyncio.sleep(1.0)  # every socket open
    began = time.monotonic()
    stop = began + seconds
    start.set()
    await asyncio.gather(*tasks)
    return sum(counts) / (time.monotonic() - began)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle(url: str, headers: dict[str, str], pid: int, count: int) -> dict[str, float]:
    """RSS growth per socket and idle CPU of the gateway with ``count`` open sockets."""
    from websockets.asyncio.client import connect

    opened: list[Any] = []
    for _ in range(20):  # warm: the first sockets pay for code paths and pools
        opened.append(await connect(url, additional_headers=headers, ping_interval=None))
    await asyncio.sleep(1.0)
    before = _rss_kib(pid)
    batch = 100
    for start in range(0, count, batch):
        opened += await asyncio.gather(
            *(
                connect(url, additional_headers=headers, ping_interval=None, compression=None)
                for _ in range(min(batch, count - start))
            )
        )
    await asyncio.sleep(2.0)
    after = _rss_kib(pid)
    cpu_start, wall_start = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(10.0)
    cpu = (_cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
    for ws in opened[:50]:
        await ws.send(b"still there")
        await ws.recv()
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {
        "sockets": count,
        "rss_growth_kib_per_socket": (after - before) / count,
        "idle_cpu_percent_of_a_core": cpu * 100,
    }


def measure(seconds: float, idle: int) -> dict[str, float]:
    """Start an upstream and a gateway, measure both rows, stop everything."""
    _raise_files_limit()
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as folder:
        (Path(folder) / "logs").mkdir()
        with Processes(Path(folder) / "logs") as processes:
            return _measure(processes, Path(folder), seconds, idle)


def _measure(processes: Processes, folder: Path, seconds: float, idle: int) -> dict[str, float]:
    up, port, admin = free_port(), free_port(), free_port()
    fixture = write_gateway_config(
        folder / "gateway",
        port=port,
        admin_port=admin,
        upstream=f"http://{LOOPBACK}:{up}",
        stream_upstream=f"http://{LOOPBACK}:{up}",
    )
    document = yaml.safe_load(fixture.config.read_text())
    document["routes"].append(
        {
            "name": "ws-bench",
            "path": WS_PATH,
            "upstream": f"http://{LOOPBACK}:{up}",
            "websocket": True,
            "max_body": "1MiB",
        }
    )
    fixture.config.write_text(yaml.safe_dump(document, sort_keys=False))
    upstream = processes.start("ws-upstream", [sys.executable, "-c", _UPSTREAM, str(up)])
    wait_for_port(upstream, up)
    gateway = processes.start(
        "gateway",
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--config",
            str(fixture.config),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=fixture.folder,
    )
    wait_for_status(gateway, f"http://{LOOPBACK}:{admin}/healthz", {})
    headers = {"Authorization": f"Bearer {fixture.token}"}
    gateway_url = f"ws://{LOOPBACK}:{port}{WS_PATH}"
    direct_url = f"ws://{LOOPBACK}:{up}{WS_PATH}"

    async def run() -> dict[str, float]:
        direct = await _echo_rate(direct_url, {}, seconds)
        through = await _echo_rate(gateway_url, headers, seconds)
        rows = {
            "direct_msgs_per_s": direct,
            "gateway_msgs_per_s": through,
            "ratio": through / direct,
        }
        if idle:
            rows.update(await _idle(gateway_url, headers, gateway.pid, idle))
        return rows

    import uvloop

    return uvloop.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=IDLE_SOCKETS, help="0: skip the idle row")
    args = parser.parse_args(argv)
    rows = measure(args.seconds, args.idle)
    for name, value in rows.items():
        print(f"{name}: {value:,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
