"""Running the gateway: worker processes under uvicorn, and the supervisor that owns them.

Uvicorn settings a proxy needs:
- uvloop, and the gateway's own HTTP/1.1 protocol class on httptools (``http/server.py``,
  why: its docstring). httptools (llhttp) refuses a request carrying both ``Content-Length``
  and ``Transfer-Encoding`` and the connection closes, where h11 kept it open and served the
  smuggled second request.
- ``proxy_headers=False``: uvicorn would otherwise believe ``X-Forwarded-For`` from 127.0.0.1;
  the gateway decides trust itself from ``server.trusted_proxies``.
- No ``Server``/``Date`` headers of uvicorn's own, so the upstream's pass through unchanged.

Process model: the supervisor binds the sockets once (on Linux one public socket per worker in a
SO_REUSEPORT group, so the kernel spreads connections: ``bind_public``) and starts N workers.
Signals are the gateway's, not uvicorn's: ``SIGTERM``/``SIGINT`` stop accepting, let requests
in flight finish (up to 30 s) and exit 0; ``SIGHUP`` reloads the configuration in every worker
without restarting it. With one worker the supervisor is the worker itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from multiprocessing.context import SpawnProcess

import uvicorn

from gateway.http.acceptor import Acceptor
from gateway.http.server import GatewayHttpProtocol
from gateway.ops.inputs import Inputs, LastGood

GRACEFUL_STOP_SECONDS = 30
# Longer than the usual load-balancer idle timeout (60 s), so the balancer, not the gateway,
# closes idle connections: otherwise a request can race the gateway's close and get a 502.
KEEP_ALIVE_SECONDS = 75
log = logging.getLogger("gateway")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the gateway and accepts with ``Acceptor``.

    uvicorn would serve the sockets through the loop's own server, which accepts one
    connection per turn of a busy loop (why that starves a burst: ``http/acceptor.py``)."""

    acceptors: list[Acceptor]

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan and the state; no listener of its own
        config, loop = self.config, asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            return GatewayHttpProtocol(config, self.server_state, self.lifespan.state)

        self.acceptors = [Acceptor(loop, sock, factory) for sock in sockets or []]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for acceptor in getattr(self, "acceptors", []):
            acceptor.close()  # before uvicorn closes the sockets
        await super().shutdown(sockets)


def raise_descriptor_limit() -> None:
    """Every client and upstream connection is a descriptor: use the hard limit, not the soft
    one (often 1,024), so a burst of connections is not refused by the gateway itself.
    Workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


# Linux spreads the connections of a SO_REUSEPORT group over its sockets by hash; elsewhere the
# option only lets sockets share a port, so the workers share one socket instead.
_BALANCED_LISTEN = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def bind_public(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker in one SO_REUSEPORT group (Linux), else one shared.

    Why: on a shared socket each worker's event loop (libuv) accepts every connection pending
    when it wakes, so a burst of new connections lands on one worker while the others idle: 40
    connections opened at once all went to one of two workers (tests/ops/test_traffic.py). The
    kernel's hash spreads them instead. Sockets
    are all bound here, so a port in use fails before any worker starts, and a worker that is
    restarted takes over its predecessor's socket and the connections queued on it."""
    if workers == 1 or not _BALANCED_LISTEN:
        return [bind(host, port)]
    first = bind(host, port, reuse_port=True)
    sockets = [first]
    try:
        actual = first.getsockname()[1]  # the same port for all, when asked for port 0
        sockets += [bind(host, actual, reuse_port=True) for _ in range(workers - 1)]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _build() -> str:
    """Whether the request path runs compiled (a wheel built with mypyc: setup.py) or as Python."""
    file = GatewayHttpProtocol.__module__ and sys.modules[GatewayHttpProtocol.__module__].__file__
    return "compiled" if str(file).endswith((".so", ".pyd")) else "pure Python"


# More worker exits than this per worker within the window stop the gateway (exit 3).
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


def _uvicorn_config(
    app: object, *, lifespan: str, keep_alive: float = KEEP_ALIVE_SECONDS
) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop="none",
        http=GatewayHttpProtocol,
        lifespan=lifespan,  # type: ignore[arg-type]
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
        date_header=False,
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS,
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]
        backlog=2048,
    )


@dataclass(frozen=True)
class WorkerPlan:
    """What a worker starts from: the last good inputs the supervisor holds (``inputs.py``)."""

    inputs: Inputs
    log_format: str
    workers: int


async def _serve_worker(plan: WorkerPlan, public: socket.socket, admin: socket.socket) -> None:
    from gateway.ops.admin import AdminApp
    from gateway.ops.app import GatewayApp

    app = GatewayApp(plan.inputs, log_format=plan.log_format, workers=plan.workers)
    keep_alive = plan.inputs.config.server.keep_alive
    public_server = _Server(_uvicorn_config(app, lifespan="on", keep_alive=keep_alive))
    admin_server = _Server(_uvicorn_config(AdminApp(app), lifespan="off"))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        public_server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, app.request_reload)
    admin_task = asyncio.create_task(admin_server.serve(sockets=[admin]))
    try:
        await public_server.serve(sockets=[public])
    finally:
        admin_server.should_exit = True
        await admin_task
    if not public_server.started:
        raise SystemExit(3)


def run_worker(plan: WorkerPlan, public: socket.socket, admin: socket.socket) -> None:
    """A worker process's whole life."""
    from gateway.observability import configure_logging

    configure_logging()
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_worker(plan, public, admin))


def serve(
    inputs: Inputs,
    *,
    host: str,
    port: int,
    workers: int,
    log_format: str,
) -> int:
    """Run the gateway in the foreground until it is stopped; the exit status."""
    raise_descriptor_limit()
    config = inputs.config
    plan = WorkerPlan(inputs, log_format, workers)
    admin_host, admin_port = config.server.admin.host, config.server.admin.port
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        publics = bind_public(host, port, workers)
    except OSError as exc:
        print(f"gateway: cannot listen: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        admin = bind(admin_host, admin_port)
    except OSError as exc:
        for sock in publics:
            sock.close()
        print(f"gateway: cannot listen: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"gateway: serving http://{host}:{port} (admin http://{admin_host}:{admin_port}), "
        f"{workers} worker{'s' if workers > 1 else ''}, pid {os.getpid()}, {_build()}",
        file=sys.stderr,
        flush=True,
    )
    try:
        if workers == 1:
            try:
                run_worker(plan, publics[0], admin)
            except SystemExit as exc:
                return int(exc.code or 0)
            return 0
        return _supervise(plan, publics, admin)
    finally:
        for sock in publics:
            sock.close()
        admin.close()
        with contextlib.suppress(OSError):
            for name in os.listdir(metrics_dir):
                os.unlink(os.path.join(metrics_dir, name))
            os.rmdir(metrics_dir)


def _supervise(plan: WorkerPlan, publics: list[socket.socket], admin: socket.socket) -> int:
    workers = plan.workers
    context = multiprocessing.get_context("spawn")
    stopping = False

    last_good = LastGood(plan.inputs)

    def start(index: int) -> SpawnProcess:
        # A new worker starts from what the others serve now, never from the disk as it is.
        now = replace(plan, inputs=last_good.inputs)
        process = context.Process(
            target=run_worker,
            args=(now, publics[index % len(publics)], admin),
            daemon=False,
        )
        process.start()
        return process

    processes = [start(index) for index in range(workers)]

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            sig = signal.SIGTERM
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    crashes = CrashLoop(workers)
    gave_up = False
    ticks = 0
    while not stopping:
        time.sleep(0.2)
        ticks += 1
        if ticks % 5 == 0:  # every second, as the workers' watchers do
            last_good.refresh()
        for index, process in enumerate(processes):
            if process.is_alive() or stopping:
                continue
            if process.exitcode == 3 or crashes.record(time.monotonic()):
                reason = "cannot start" if process.exitcode == 3 else "keep crashing"
                print(f"gateway: workers {reason}; stopping", file=sys.stderr, flush=True)
                stopping = gave_up = True
                forward(signal.SIGTERM, None)
                break
            print(
                f"gateway: worker {process.pid} exited ({process.exitcode}); starting another",
                file=sys.stderr,
                flush=True,
            )
            processes[index] = start(index)
    deadline = time.monotonic() + GRACEFUL_STOP_SECONDS + 5
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    # Giving up is a failure: a restart-on-failure supervisor (systemd, Kubernetes) must see it.
    return 3 if gave_up else 0


class CrashLoop:
    """Whether worker exits come too fast to go on restarting them.

    Only recent exits count: more than ``CRASH_LIMIT`` per worker within ``CRASH_WINDOW``
    seconds is a loop (a broken install, a bug on every request), while a worker killed now and
    then, for as long as the gateway runs, is always replaced."""

    def __init__(self, workers: int) -> None:
        self._limit = CRASH_LIMIT * workers
        self._exits: collections.deque[float] = collections.deque()

    def record(self, now: float) -> bool:
        """Note an exit at ``now`` (monotonic seconds); True when that makes a loop."""
        self._exits.append(now)
        while self._exits and self._exits[0] <= now - CRASH_WINDOW:
            self._exits.popleft()
        return len(self._exits) > self._limit
