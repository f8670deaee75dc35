"""Waiting time at a pool of identical replicas (M/M/c, Erlang C).

Kept apart and pure because both the solver's precomputed options and the independent
checker call it: one formula, one place.
"""

from __future__ import annotations

import math


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability an arrival waits, for `servers` replicas and offered load a = lambda/mu."""
    if offered_load <= 0:
        return 0.0
    if offered_load >= servers:
        return 1.0
    # Erlang B by its stable recursion, then C from B.
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    rho = offered_load / servers
    return b / (1.0 - rho * (1.0 - b))


def wait_ms_at_percentile(
    servers: int, arrival_rps: float, service_ms: float, percentile: float
) -> float:
    """Waiting time not exceeded by `percentile`% of arrivals in an M/M/c queue.

    P(W > t) = C(c, a) * exp(-(c*mu - lambda) * t). Infinite when the pool is unstable.
    """
    if arrival_rps <= 0:
        return 0.0
    mu = 1000.0 / service_ms
    if arrival_rps >= servers * mu:
        return math.inf
    p_wait = erlang_c(servers, arrival_rps / mu)
    tail = 1.0 - percentile / 100.0
    if p_wait <= tail:
        return 0.0
    return 1000.0 * math.log(p_wait / tail) / (servers * mu - arrival_rps)


def batch_fill_ms(batch: int, arrival_rps: float, percentile: float) -> float:
    """How long the first request of a batch waits for the other `batch - 1` to arrive.

    With Poisson arrivals the time for k more arrivals is Gamma(k, rate); its percentile is
    the wait not exceeded by `percentile`% of batches (the first request waits longest).
    """
    if batch <= 1:
        return 0.0
    if arrival_rps <= 0:
        return math.inf
    from scipy.special import gammaincinv

    return 1000.0 * float(gammaincinv(batch - 1, percentile / 100.0)) / arrival_rps
