"""Round robin over a route's targets, with passive health.

A target that refuses a connection, does not accept one within the connect timeout, or does
not answer within the route's timeout is rested for a while (as nginx's max_fails=1 does);
requests go to the others. When every target is resting they are all tried anyway, so a
recovered target is found without a separate health checker.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

from gateway.config import Route

REST_SECONDS = 10.0


class Balancer:
    """Chooses targets for routes; one per worker, kept across reloads."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, rest: float = REST_SECONDS
    ) -> None:
        self._clock = clock
        self._rest = rest
        self._down_until: dict[str, float] = {}
        self._cycles: dict[tuple[str, ...], Iterator[int]] = {}

    def order(self, route: Route) -> list[str]:
        """The targets to try for one request, best first."""
        targets = route.upstreams
        if len(targets) == 1:
            return [targets[0]]
        cycle = self._cycles.get(targets)
        if cycle is None:
            cycle = self._cycles[targets] = itertools.cycle(range(len(targets)))
        start = next(cycle)
        rotated = [*targets[start:], *targets[:start]]
        if not self._down_until:
            return rotated
        now = self._clock()
        healthy = [t for t in rotated if self._down_until.get(t, 0.0) <= now]
        resting = [t for t in rotated if self._down_until.get(t, 0.0) > now]
        return healthy + resting

    def failed(self, target: str) -> None:
        """``target`` could not be connected to, or did not answer in time: rest it."""
        self._down_until[target] = self._clock() + self._rest

    def succeeded(self, target: str) -> None:
        if self._down_until:
            self._down_until.pop(target, None)
