"""Which reloadable inputs are broken while their last good state serves, and why.

``/readyz`` gives one reason per broken input (degraded, 200), ``/metrics`` the gauge
``gateway_input_degraded{input}`` and the counter ``gateway_input_load_failures_total{input}``:
``config`` (routes.yaml, or the users file it names missing), ``keys``, ``jwks_file`` (refused
reloads), ``users_file`` (the token service's directory) and ``jwks_uri`` (a fetch that failed
while the keys fetched before still serve).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway.auth.jwks import JwksSource
from gateway.observability import INPUT_DEGRADED, INPUT_FAILURES, INPUTS

log = logging.getLogger("gateway")

# How /readyz names each input a reload refuses (the metrics' ``input`` label is the key).
_LABELS = {"config": "configuration", "keys": "keys folder", "jwks_file": "jwks_file"}


def refused_reasons(problems: Mapping[str, list[str]], before: Mapping[str, str]) -> dict[str, str]:
    """One reason per input a reload refused; logs every problem, counts each new reason."""
    reasons: dict[str, str] = {}
    for name, found in problems.items():
        for problem in found:
            log.error("reload refused: %s", problem)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        reasons[name] = f"{_LABELS[name]} not reloaded: {found[0]}{more}"
        if before.get(name) != reasons[name]:
            INPUT_FAILURES.labels(name).inc()
    return reasons


def failing_jwks_uris(jwks: Mapping[str, JwksSource]) -> str | None:
    """Why the ``jwks_uri`` sources whose last fetch failed serve their last keys, or None."""
    failing = [
        f"jwks_uri of {issuer} ({source.uri}) failing: {source.last_error}; the keys last "
        "fetched serve"
        for issuer, source in jwks.items()
        if source.uri is not None and source.ready and source.last_error is not None
    ]
    return "; ".join(failing) if failing else None


def publish(degraded: Mapping[str, str]) -> None:
    """Set ``gateway_input_degraded`` for every input: 1 when it is in ``degraded``."""
    for name in INPUTS:
        INPUT_DEGRADED.labels(name).set(1 if name in degraded else 0)
