"""``python -m bench.instructions [--requests N] [--python PATH]``: instructions per request.

CPU time per request on a shared 2-core VM moves by 30% from run to run, which hides any
change smaller than that; an instruction count does not move. This runs one gateway worker
under valgrind's callgrind (about 50 times slower, so the count of requests is small), sends
``N`` requests over one keep-alive connection (the benchmark's route, token and path, the
token cached), and counts the instructions executed while they were served, minus what the
worker executes idle in the same time (its reload watcher, revocation feed, publisher).

``--new-tokens`` gives every counted request a token the worker has not seen (signed before the
count starts), so the figure is what a verified-token cache miss costs: the RS256 check and the
Python around it.
``--extra-routes N`` adds N routes to the table (the request's route stays the same), to show
that the cost of a request does not grow with the table.
``--python`` names the interpreter of another checkout's virtual environment, so two
versions can be compared on the same machine: the figure repeats to within 0.1%.
``--keep FILE`` copies the dump of the counted requests to ``FILE``, for
``callgrind_annotate --inclusive=yes FILE``: which functions, compiled or C, the requests spent
their instructions in.
Needs ``valgrind`` (Debian's package); prints one line.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fixture import BENCH_PATH, sign_many, write_gateway_config
from bench.procs import free_port

# A minimal keep-alive upstream: every request gets the same small answer.
_UPSTREAM = """
import asyncio, sys
ANSWER = (b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n"
          b"content-length: 11\\r\\n\\r\\n" + b'{"ok":true}')
async def serve(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(ANSWER)
            await writer.drain()
    except Exception:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""
_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], capture_output=True, timeout=120, check=False)


def _counted(pid: int, out: Path, tag: str, keep: Path | None = None) -> int:
    """Dump the counters since the last zeroing; the instructions they hold. ``keep``: where
    to copy the dump, for ``callgrind_annotate``."""
    _control("-d", tag, str(pid))
    time.sleep(0.5)
    dumps = sorted(glob.glob(f"{out}.*"), key=os.path.getmtime)
    found = _TOTAL.search(Path(dumps[-1]).read_text(errors="replace"))
    if found is None:
        raise RuntimeError("callgrind wrote no total")
    if keep is not None:
        shutil.copyfile(dumps[-1], keep)
    return int(found.group(1))


def measure(
    python: str,
    requests: int,
    *,
    assertion: bool = False,
    extra_routes: int = 0,
    new_tokens: bool = False,
    keep: Path | None = None,
) -> tuple[float, float]:
    """Instructions per request (idle work removed) and the idle rate in instructions/s."""
    with tempfile.TemporaryDirectory(prefix="instructions-") as folder:
        up, port, admin = free_port(), free_port(), free_port()
        fixture = write_gateway_config(
            Path(folder) / "gateway",
            port=port,
            admin_port=admin,
            upstream=f"http://127.0.0.1:{up}",
            stream_upstream=f"http://127.0.0.1:{up}",
            identity_assertion=assertion,
            extra_routes=extra_routes,
        )
        out = Path(folder) / "callgrind.out"
        tokens = (
            [f"Bearer {t}" for t in sign_many(fixture.key, fixture.algorithm, requests)]
            if new_tokens
            else []
        )
        upstream = subprocess.Popen([sys.executable, "-c", _UPSTREAM, str(up)])
        argv = [python, "-m", "gateway.cli", "serve", "--config", str(fixture.config)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        gateway = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
            cwd=fixture.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = _connect(port, gateway)

            def call(authorization: str = fixture.auth_header["Authorization"]) -> None:
                client.request("GET", BENCH_PATH, headers={"Authorization": authorization})
                answer = client.getresponse()
                answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"the gateway answered {answer.status}")

            for _ in range(50):  # the token cached, every code path warm
                call()
            _control("-z", str(gateway.pid))
            started = time.monotonic()
            time.sleep(5)
            idle_rate = _counted(gateway.pid, out, "idle") / (time.monotonic() - started)
            _control("-z", str(gateway.pid))
            started = time.monotonic()
            for index in range(requests):
                if tokens:
                    call(tokens[index])
                else:
                    call()
            busy = _counted(gateway.pid, out, "busy", keep)
            elapsed = time.monotonic() - started
        finally:
            gateway.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                gateway.wait(120)
            gateway.kill()
            upstream.terminate()
            upstream.wait()
        return (busy - idle_rate * elapsed) / requests, idle_rate


def _connect(port: int, gateway: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 300  # Python under valgrind starts in about 30 s
    while True:
        if gateway.poll() is not None:
            raise RuntimeError("the gateway exited under valgrind")
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            client.connect()
            return client
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--python", default=sys.executable, help="the gateway's interpreter")
    parser.add_argument(
        "--assertion", action="store_true", help="with identity_assertion (the signed identity)"
    )
    parser.add_argument(
        "--extra-routes", type=int, default=0, help="routes added to the table (bench/fixture.py)"
    )
    parser.add_argument(
        "--new-tokens", action="store_true", help="a token not seen before on every request"
    )
    parser.add_argument(
        "--keep", type=Path, help="copy the counted requests' callgrind dump here (to annotate)"
    )
    args = parser.parse_args(argv)
    per_request, idle = measure(
        args.python,
        args.requests,
        assertion=args.assertion,
        extra_routes=args.extra_routes,
        new_tokens=args.new_tokens,
        keep=args.keep,
    )
    print(
        f"{per_request:,.0f} instructions per request{' with the assertion' * args.assertion}"
        f"{', each with a new token' * args.new_tokens} "
        f"({args.requests} requests, "
        f"{30 + args.extra_routes:,} routes, "
        f"idle work {idle / 1e6:.2f} M instructions/s removed; {args.python})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
