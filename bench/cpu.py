"""CPU accounting around one measurement, so a row says what it cost and how quiet the machine was.

Requests per second on a shared 2-core machine move with whatever else runs; CPU time per
request of the server under test moves much less. So each wrk row records the CPU seconds of
the process groups the benchmark started (from /proc/PID/stat, by process group), of wrk itself
(``RUSAGE_CHILDREN``), and of the whole machine (/proc/stat); what is left is other people's
load during the row, printed next to it.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """User plus system CPU seconds of every live process in process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes spent (user, nice, system) on every core since boot.

    Interrupt and softirq time is left out on both sides: at these rates most of it is the
    loopback network stack carrying the benchmark's own traffic, not another process's load.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        user, nice, system = (int(v) for v in stat.readline().split()[1:4])
    return (user + nice + system) / _TICKS


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """CPU seconds spent during one measurement."""

    seconds: float = 0.0
    server: float = 0.0
    upstream: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    @property
    def others_cores(self) -> float:
        """Cores kept busy on average by processes this benchmark did not start."""
        if self.seconds <= 0:
            return 0.0
        return max(0.0, self.machine - self.server - self.upstream - self.client) / self.seconds


class CpuMeter:
    """``with CpuMeter(server_pgids, upstream_pgids) as meter:`` fills ``meter.use``."""

    def __init__(self, server: Iterable[int], upstream: Iterable[int] = ()) -> None:
        self._server = tuple(server)
        self._upstream = tuple(upstream)
        self.use = CpuUse()
        self._start: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float, float, float]:
        return (
            os.times().elapsed,
            sum(group_cpu_seconds(g) for g in self._server),
            sum(group_cpu_seconds(g) for g in self._upstream),
            _children_seconds(),
            machine_busy_seconds(),
        )

    def __enter__(self) -> CpuMeter:
        self._start = self._read()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        end = self._read()
        elapsed, server, upstream, client, machine = (
            b - a for a, b in zip(self._start, end, strict=True)
        )
        self.use = CpuUse(elapsed, server, upstream, client, machine)


def _threads_of(pgids: Iterable[int]) -> list[int]:
    """The thread ids of every live process in the process groups ``pgids``."""
    wanted = set(pgids)
    threads: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rfind(")") + 2 :].split()[2]) in wanted:
                threads += [int(task.name) for task in (entry / "task").iterdir()]
        except (OSError, ValueError):
            continue  # ended meanwhile
    return threads


def _set_affinity(threads: Iterable[int], cpus: set[int]) -> None:
    for thread in threads:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.sched_setaffinity(thread, cpus)


@contextlib.contextmanager
def pinned(pgids: Iterable[int], cpu: int = 0) -> Iterator[None]:
    """Every thread of the process groups ``pgids`` on one CPU for the block, then back on all
    of this process's CPUs (threads started meanwhile included)."""
    groups = tuple(pgids)
    _set_affinity(_threads_of(groups), {cpu})
    try:
        yield
    finally:
        _set_affinity(_threads_of(groups), os.sched_getaffinity(0))
