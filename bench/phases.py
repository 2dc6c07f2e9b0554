"""The phases of one run, in order, each filling ``Results`` and stopping what it started.

nginx upstream and the streaming upstream start; wrk measures direct, then nginx as a proxy,
then the floor of a Python proxy on this stack, then the gateway with 1 worker (plus the large
bodies through it) and with 2 workers beside HAProxy (their c=1, c=50 and cache-defeated rows
alternate three times and keep their medians, as the comparison's targets are defined; then
c=1000, py-spy and the token endpoints); the servers stop; the in-process verify costs run
last, on a quieter machine.
A phase that fails is noted and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import auth_flow, forward_auth, haproxy, nginx, stream, verify_cost, websocket, wrk
from bench.cpu import CpuMeter, pinned
from bench.fixture import (
    BENCH_PATH,
    SCOPES,
    STREAM_PREFIX,
    GatewayFixture,
    new_private_key,
    sign_many,
    sign_token,
    write_gateway_config,
)
from bench.plan import (
    CACHE_OFF,
    DIRECT,
    FLOOR,
    GATEWAY_1W,
    GATEWAY_2W,
    GATEWAY_MANY_ROUTES,
    HAPROXY,
    HAPROXY_ROTATING,
    LABELS,
    MANY_ROUTES,
    NGINX,
    WRK_THREADS,
    Results,
    Settings,
    median_run,
)
from bench.procs import (
    LOOPBACK,
    Child,
    Processes,
    StartError,
    free_port,
    http_status,
    wait_for_port,
    wait_for_status,
)
from bench.profile import find_py_spy, record_argv, summarise

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Ports:
    """A free loopback port for every server of the run."""

    upstream: int = field(default_factory=free_port)
    proxy: int = field(default_factory=free_port)
    floor: int = field(default_factory=free_port)
    stream: int = field(default_factory=free_port)
    gateway: int = field(default_factory=free_port)
    haproxy: int = field(default_factory=free_port)
    admin: int = field(default_factory=free_port)


def _url(port: int, path: str = BENCH_PATH) -> str:
    return f"http://{LOOPBACK}:{port}{path}"


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


class Bench:
    """One run: the processes it started, where it writes, and what it has measured."""

    def __init__(self, settings: Settings, tools: dict[str, str | None], folder: Path) -> None:
        self.settings = settings
        self.nginx = tools.get("nginx")
        self.wrk = tools.get("wrk")
        self.haproxy = tools.get("haproxy")
        self.folder = folder
        self.ports = Ports()
        self.results = Results()
        (folder / "logs").mkdir()
        self.processes = Processes(folder / "logs")
        self.upstream: Child | None = None
        self.fixture: GatewayFixture = write_gateway_config(
            folder / "gateway",
            port=self.ports.gateway,
            admin_port=self.ports.admin,
            upstream=f"http://{LOOPBACK}:{self.ports.upstream}",
            stream_upstream=f"http://{LOOPBACK}:{self.ports.stream}",
        )
        self.tokens_file = folder / "tokens.txt"

    # -- one wrk row ----------------------------------------------------------------------------

    def _load(self, connections: int, seconds: float) -> wrk.Load:
        # At c=1000 a slow request is what is measured: let it finish instead of timing out.
        timeout = 10.0 if connections >= 1000 else 5.0
        return wrk.Load(connections, WRK_THREADS[connections], seconds, timeout)

    def _wrk(
        self,
        setup: str,
        connections: int,
        url: str,
        server: Child | None,
        headers: dict[str, str],
        script: Path | None = None,
        script_args: Sequence[str] = (),
    ) -> None:
        """Measure one row and the CPU it took; a failure becomes the row's skip reason."""
        key = (setup, connections)
        if self.wrk is None:
            self.results.skipped[key] = "wrk is not installed"
            return
        _say(f"{LABELS[setup]}, c={connections} ...")
        if script is None and connections >= 1000:
            script = wrk.LATENCY_TAIL_LUA  # counts the requests over 1 s and 2 s
        servers = [server.pid] if server is not None else []
        upstreams = (
            [self.upstream.pid] if self.upstream is not None and server != self.upstream else []
        )
        # At c=1, wrk, the server and the upstream share one CPU: on these VMs a row spread
        # over both lands in one of two modes 0.4 ms apart (bench/README.md, "What runs").
        cpu = 0 if connections == 1 else None
        try:
            with (
                CpuMeter(servers, upstreams) as meter,
                pinned([*servers, *upstreams]) if cpu is not None else contextlib.nullcontext(),
            ):
                result = wrk.run(
                    self.wrk,
                    url,
                    self._load(connections, self.settings.seconds),
                    headers=headers,
                    script=script,
                    script_args=script_args,
                    cpu=cpu,
                )
        except wrk.WrkError as error:
            self.results.skipped[key] = str(error).splitlines()[0]
            return
        # A row measured again keeps its median run (by throughput; at c=1 also by latency).
        runs = self.results.runs.setdefault(key, [])
        runs.append((result, meter.use))
        median, use = median_run(runs)
        self.results.rows[key] = median
        self.results.cpu[key] = use

    def _warm_up(self, url: str, headers: dict[str, str]) -> None:
        if self.wrk is not None:
            with contextlib.suppress(wrk.WrkError):
                wrk.run(self.wrk, url, self._load(50, self.settings.warmup), headers=headers)

    def _rows(
        self,
        setup: str,
        url: str,
        server: Child | None,
        headers: dict[str, str],
        connections: Sequence[int] = (1, 50),
    ) -> None:
        self._warm_up(url, headers)
        for count in connections:
            self._wrk(setup, count, url, server, headers)

    # -- phases ---------------------------------------------------------------------------------

    def prepare_rotating_tokens(self) -> None:
        """Sign the distinct tokens of the cache-defeated row, before anything is timed."""
        if self.wrk is None or self.nginx is None:
            return
        count = self.settings.rotating_tokens
        _say(f"signing {count:,} {self.fixture.algorithm} tokens ...")
        started = time.perf_counter()
        tokens = sign_many(self.fixture.key, self.fixture.algorithm, count)
        self.tokens_file.write_text("\n".join(tokens) + "\n")
        self.results.notes.append(
            f"signed {count:,} distinct {self.fixture.algorithm} tokens for the cache-defeated "
            f"row in {time.perf_counter() - started:.1f} s"
        )

    def start_upstreams(self) -> None:
        """The streaming upstream, and nginx ``return 200`` (every wrk row needs it)."""
        stream_child = self.processes.start(
            "stream-upstream",
            [sys.executable, "-m", "bench.stream_upstream", "--port", str(self.ports.stream)],
            cwd=REPO,
        )
        wait_for_port(stream_child, self.ports.stream)
        if self.nginx is None:
            self.results.skip(
                [DIRECT, NGINX, GATEWAY_1W, GATEWAY_2W, CACHE_OFF],
                "nginx is not installed (it is the upstream)",
            )
            return
        folder = self.folder / "nginx-upstream"
        self.upstream = nginx.start_nginx(
            self.processes,
            self.nginx,
            "nginx-upstream",
            folder,
            nginx.upstream_config(folder, self.ports.upstream),
            self.ports.upstream,
        )

    def measure_direct(self) -> None:
        """wrk straight at the upstream; the large bodies straight at the streaming upstream."""
        if self.upstream is not None:
            self._rows(DIRECT, _url(self.ports.upstream), self.upstream, {})
        base = f"http://{LOOPBACK}:{self.ports.stream}"
        for direction in ("download", "upload"):
            _say(f"stream {direction} direct ...")
            self.results.streams.append(
                stream.transfer(direction, base, through="direct", size=self.settings.stream_bytes)
            )

    def measure_nginx_proxy(self) -> None:
        """nginx ``proxy_pass`` in front of the same upstream: the reference."""
        if self.nginx is None:
            return
        folder = self.folder / "nginx-proxy"
        config = nginx.proxy_config(folder, self.ports.proxy, self.ports.upstream)
        child = nginx.start_nginx(
            self.processes, self.nginx, "nginx-proxy", folder, config, self.ports.proxy
        )
        try:
            self._rows(NGINX, _url(self.ports.proxy), child, {}, (1, 50, 1000))
        finally:
            self.processes.stop(child)

    def _start_haproxy(self) -> Child | None:
        """HAProxy checking the same token (RS256 on every request), once it passed the sanity
        check; None (its rows skipped with the reason) otherwise."""
        setups = [HAPROXY, HAPROXY_ROTATING]
        if self.haproxy is None:
            self.results.skip(setups, "haproxy is not installed")
            return None
        folder = self.folder / "haproxy"
        public_key = haproxy.write_public_key(folder, self.fixture.key)
        config = haproxy.config(self.ports.haproxy, self.ports.upstream, public_key)
        child = haproxy.start_haproxy(
            self.processes, self.haproxy, folder, config, self.ports.haproxy
        )
        refused = self._refuses_bad_tokens(_url(self.ports.haproxy))
        if refused is not None:
            self.results.skip(setups, refused)
            self.processes.stop(child)
            return None
        return child

    def _refuses_bad_tokens(self, url: str) -> str | None:
        """Why the proxy cannot be measured: it lets a bad token through or refuses the good one."""
        forged = sign_token(new_private_key(self.fixture.algorithm), self.fixture.algorithm)
        expired = sign_token(self.fixture.key, self.fixture.algorithm, now=time.time() - 7200)
        for what, headers, wanted in (
            ("the good token", self.fixture.auth_header, 200),
            ("no token", {}, 401),
            ("a forged token", {"Authorization": f"Bearer {forged}"}, 401),
            ("an expired token", {"Authorization": f"Bearer {expired}"}, 401),
        ):
            status = http_status(url, headers)
            if status != wanted:
                return f"sanity check failed: {what} got {status}, not {wanted}"
        return None

    def measure_floor(self) -> None:
        """The least a Python proxy on this stack costs (bench/floor_proxy.py), 2 workers."""
        if self.upstream is None:
            return
        argv = [sys.executable, "-m", "bench.floor_proxy", "--port", str(self.ports.floor)]
        argv += ["--upstream", f"http://{LOOPBACK}:{self.ports.upstream}", "--workers", "2"]
        child = self.processes.start("python-floor", argv, cwd=REPO)
        try:
            wait_for_status(child, _url(self.ports.floor), {})
            self._rows(FLOOR, _url(self.ports.floor), child, {})
        except StartError as error:
            self.results.skip([FLOOR], f"did not start: {str(error).splitlines()[0]}")
        finally:
            self.processes.stop(child)

    def _start_gateway(self, workers: int) -> Child:
        argv = [self.settings.gateway_python, "-m", "gateway.cli", "serve"]
        argv += ["--config", str(self.fixture.config)]
        argv += ["--host", LOOPBACK, "--port", str(self.ports.gateway), "--workers", str(workers)]
        child = self.processes.start(f"gateway-{workers}w", argv, cwd=self.fixture.folder)
        wait_for_status(child, _url(self.ports.gateway), self.fixture.auth_header)
        return child

    def _gateway_phase(
        self, setups: Sequence[str], workers: int, body: Callable[[Child], None]
    ) -> None:
        if self.upstream is None:
            return
        try:
            child = self._start_gateway(workers)
        except StartError as error:
            self.results.skip(setups, f"gateway did not start: {str(error).splitlines()[0]}")
            self.results.notes.append(str(error))
            return
        try:
            body(child)
        finally:
            self.processes.stop(child)

    def measure_gateway_1w(self) -> None:
        """1 worker: wrk rows, then 1 GiB each way with the worker's RSS sampled."""

        def body(child: Child) -> None:
            self._rows(GATEWAY_1W, _url(self.ports.gateway), child, self.fixture.auth_header)
            self._detect_features(child)
            base = _url(self.ports.gateway, STREAM_PREFIX)
            for direction in ("download", "upload"):
                _say(f"stream {direction} through the gateway ...")
                self.results.streams.append(
                    stream.transfer(
                        direction,
                        base,
                        through="gateway",
                        size=self.settings.stream_bytes,
                        headers=self.fixture.auth_header,
                        pid=child.pid,  # with one worker, the process started is the worker
                    )
                )

        self._gateway_phase([GATEWAY_1W], 1, body)

    def measure_gateway_2w(self) -> None:
        """2 workers side by side with HAProxy: their c=1, c=50 and cache-defeated rows
        alternate ``rounds`` times (each keeps its median run), then c=1000 once each; then
        py-spy, login and refresh."""

        def body(child: Child) -> None:
            url = _url(self.ports.gateway)
            rival = self._start_haproxy()
            rival_url = _url(self.ports.haproxy)
            try:
                self._warm_up(url, self.fixture.auth_header)
                if rival is not None:
                    self._warm_up(rival_url, self.fixture.auth_header)
                for _ in range(self.settings.rounds):
                    for count in (1, 50):
                        if rival is not None:
                            self._wrk(HAPROXY, count, rival_url, rival, self.fixture.auth_header)
                        self._wrk(GATEWAY_2W, count, url, child, self.fixture.auth_header)
                    if rival is not None:
                        self._rotating(HAPROXY_ROTATING, rival_url, rival)
                    self._rotating(CACHE_OFF, url, child)
                if rival is not None:
                    self._wrk(HAPROXY, 1000, rival_url, rival, self.fixture.auth_header)
            finally:
                if rival is not None:
                    self.processes.stop(rival)
            self._wrk(GATEWAY_2W, 1000, url, child, self.fixture.auth_header)
            if self.settings.profile:
                self._profile(child, url)
            self._token_endpoints()

        self._gateway_phase([GATEWAY_2W, CACHE_OFF, HAPROXY, HAPROXY_ROTATING], 2, body)

    def _rotating(self, setup: str, url: str, child: Child) -> None:
        """c=50 with a different RS256 token on every request (``setup`` names the row)."""
        if not self.tokens_file.exists():
            self.results.skipped[(setup, 50)] = "no rotating tokens"
            return
        lines = self.tokens_file.read_text().split()
        for token in (lines[0], lines[-1]):
            status = http_status(url, {"Authorization": f"Bearer {token}"})
            if status != 200:
                self.results.skipped[(setup, 50)] = f"a rotating token got {status}"
                return
        # No warm-up: it would put the first tokens of each thread's cycle into the cache.
        script_args = [str(self.tokens_file), str(WRK_THREADS[50])]
        self._wrk(setup, 50, url, child, {}, wrk.ROTATE_TOKENS_LUA, script_args)

    def measure_many_routes(self) -> None:
        """``gateway check`` on a table of 10,000 more routes, then 2 workers serving it at c=50."""
        if self.upstream is None:
            return
        fixture = write_gateway_config(
            self.folder / "gateway-many-routes",
            port=self.ports.gateway,
            admin_port=self.ports.admin,
            upstream=f"http://{LOOPBACK}:{self.ports.upstream}",
            stream_upstream=f"http://{LOOPBACK}:{self.ports.stream}",
            extra_routes=MANY_ROUTES,
        )
        _say(f"gateway check on {fixture.route_count:,} routes ...")
        python = self.settings.gateway_python
        argv = [python, "-m", "gateway.cli", "check", "--config", str(fixture.config)]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=fixture.folder, timeout=120)
        self.results.route_check = {
            "routes": fixture.route_count,
            "seconds": round(time.perf_counter() - started, 3),
            "ok": done.returncode == 0,
            "output": (done.stdout + done.stderr).strip().splitlines()[-1:],
        }
        argv = [python, "-m", "gateway.cli", "serve", "--config", str(fixture.config)]
        argv += ["--host", LOOPBACK, "--port", str(self.ports.gateway), "--workers", "2"]
        try:
            child = self.processes.start("gateway-many-routes", argv, cwd=fixture.folder)
            wait_for_status(child, _url(self.ports.gateway), fixture.auth_header, timeout=60)
        except StartError as error:
            self.results.skip([GATEWAY_MANY_ROUTES], f"did not start: {str(error).splitlines()[0]}")
            return
        try:
            url = _url(self.ports.gateway)
            self._rows(GATEWAY_MANY_ROUTES, url, child, fixture.auth_header, (50,))
        finally:
            self.processes.stop(child)

    def _detect_features(self, child: Child) -> None:
        """Whether the measured gateway wrote access-log lines and served /metrics."""
        try:
            lines = child.stdout.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        json_lines = sum(1 for line in lines if line.startswith("{") and "request_id" in line)
        metrics = http_status(f"http://{LOOPBACK}:{self.ports.admin}/metrics")
        self.results.features = {
            "access_log": json_lines > 0,
            "access_log_lines": json_lines,
            "requests_sent": sum(
                r.requests for (setup, _), r in self.results.rows.items() if setup == GATEWAY_1W
            ),
            "metrics": metrics == 200,
            "metrics_status": metrics,
        }

    def _profile(self, child: Child, url: str) -> None:
        py_spy = find_py_spy()
        if py_spy is None:
            self.results.notes.append("--profile: py-spy not found (pip install py-spy)")
            return
        seconds = self.settings.seconds
        raw = self.folder / "py-spy.txt"
        _say("py-spy during an extra gateway 2 workers c=50 run ...")
        spy = self.processes.start("py-spy", record_argv(py_spy, child.pid, seconds + 1, raw))
        time.sleep(0.5)
        if self.wrk is not None:
            with contextlib.suppress(wrk.WrkError):
                wrk.run(self.wrk, url, self._load(50, seconds), headers=self.fixture.auth_header)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.process.wait(seconds + 30)
        self.processes.stop(spy)
        if raw.exists():
            self.results.profile = summarise(raw, REPO)
        else:
            self.results.notes.append(f"py-spy wrote nothing: {spy.tail(3)}")

    def _token_endpoints(self) -> None:
        unavailable = auth_flow.add_user(self.fixture.config, SCOPES)
        base = f"http://{LOOPBACK}:{self.ports.gateway}"
        if unavailable is None and not asyncio.run(auth_flow.endpoints_available(base)):
            unavailable = "not available yet (POST /auth/login or /auth/refresh answers 404)"
        if unavailable is not None:
            self.results.auth_unavailable = unavailable
            return
        time.sleep(2.5)  # a changed users file takes effect within 2 s
        seconds = self.settings.auth_seconds
        _say("login and refresh on SQLite ...")
        self.results.auth.append(asyncio.run(auth_flow.login_throughput(base, seconds)))
        self.results.auth.append(asyncio.run(auth_flow.refresh_throughput(base, seconds)))

    def measure_assertion(self) -> None:
        forward_auth.measure_assertion(self)

    def measure_forward_auth(self) -> None:
        forward_auth.measure_forward_auth(self)

    def measure_verify(self) -> None:
        """In-process: verify cost per algorithm, then the cache under a million tokens."""
        _say("verify cost and cache bound (in process) ...")
        self.results.costs = verify_cost.measure_costs(self.settings.verify_seconds)
        self.results.bound = verify_cost.measure_cache_bound(self.settings.cache_inserts)

    # -- the run --------------------------------------------------------------------------------

    def _phase(self, phase: Callable[[], None]) -> None:
        """Run one phase; an unexpected error is noted and the run goes on with the next."""
        try:
            phase()
        except (StartError, OSError, RuntimeError, ValueError, ImportError) as error:
            self.results.notes.append(f"{phase.__name__} failed: {type(error).__name__}: {error}")
            traceback.print_exc(file=sys.stderr)

    def measure_websockets(self) -> None:
        """The WebSocket rows (bench/websocket.py): relay throughput, idle sockets."""
        quick = self.settings.quick
        rows = websocket.measure(2.0 if quick else 10.0, 500 if quick else websocket.IDLE_SOCKETS)
        self.results.features["websocket"] = rows
        self.results.notes.append(
            f"websocket: 50 sockets echoing 1 KiB: {rows['gateway_msgs_per_s']:,.0f} msgs/s "
            f"through the gateway, {rows['direct_msgs_per_s']:,.0f} direct "
            f"({rows['ratio']:.0%}; target 40%); {rows['sockets']:,.0f} idle sockets: "
            f"{rows['rss_growth_kib_per_socket']:.1f} KiB RSS each (target 32), "
            f"{rows['idle_cpu_percent_of_a_core']:.2f}% of a core idle (target 2%)"
        )

    def run(self) -> None:
        """Every phase in order; every server is stopped before the in-process measurements."""
        with self.processes:
            for phase in (
                self.prepare_rotating_tokens,
                self.start_upstreams,
                self.measure_direct,
                self.measure_nginx_proxy,
                self.measure_floor,
                self.measure_gateway_1w,
                self.measure_gateway_2w,
                self.measure_assertion,
                self.measure_forward_auth,
                self.measure_many_routes,
            ):
                self._phase(phase)
        self._phase(self.measure_verify)
        self._phase(self.measure_websockets)
