"""The queueing model (placement/queueing.py) against a discrete-event simulation of the same
queue: FCFS, `c` identical servers, 200 000 jobs, fixed seed (a fraction of a second each).

Stated tolerance (docs/queueing.md): the model's p95 wait is within -10 % / +35 % of the
simulated one (M/M/c: ±5 %, the formula is exact there); a shared-device bound is never below it;
a co-located pool whose pieces' jobs arrive together (a fan-out) within -5 % / +75 %.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from placement.queueing import (
    Stream,
    batch_fill_ms,
    colocated_waits_ms,
    ggc_wait_ms_at_percentile,
    pooled_wait_ms_at_percentile,
    service_mean_ms,
    service_scv,
    shared_wait_bound_ms,
    shared_wait_ms_at_percentile,
)

N = 200_000


def simulate_p95_wait(gaps_ms: np.ndarray, services_ms: np.ndarray, servers: int = 1) -> float:
    """FCFS at `servers` identical servers: each job takes the earliest free one."""
    free = [0.0] * servers
    t, waits = 0.0, np.empty(len(gaps_ms))
    for i, (gap, service) in enumerate(zip(gaps_ms.tolist(), services_ms.tolist())):
        t += gap
        start = max(t, free[0])
        waits[i] = start - t
        heapq.heapreplace(free, start + service)
    return float(np.percentile(waits[N // 10:], 95))  # warm-up dropped


def lognormal(rng, n, p50, p95):
    sigma = math.log(p95 / p50) / 1.6448536269514722 if p95 > p50 else 0.0
    return p50 * np.exp(sigma * rng.standard_normal(n))


def test_md1_p95_wait_within_tolerance():
    rng = np.random.default_rng(1)
    for rho in (0.3, 0.5, 0.7):
        service = 10.0
        rate = rho / service * 1000.0
        sim = simulate_p95_wait(rng.exponential(1000.0 / rate, N), np.full(N, service))
        model = ggc_wait_ms_at_percentile(1, rate, service, 95, cs2=0.0, ca2=1.0)
        assert 0.9 * sim <= model <= 1.35 * sim, (rho, model, sim)


def test_mmc_p95_wait_is_exact():
    rng = np.random.default_rng(2)
    for servers, rho in ((1, 0.6), (3, 0.7), (8, 0.8)):
        service = 20.0
        rate = rho * servers / service * 1000.0
        sim = simulate_p95_wait(rng.exponential(1000.0 / rate, N), rng.exponential(service, N), servers)
        model = ggc_wait_ms_at_percentile(servers, rate, service, 95, cs2=1.0, ca2=1.0)
        assert model == pytest.approx(sim, rel=0.05), (servers, model, sim)


def test_inference_like_service_with_periodic_and_poisson_arrivals():
    rng = np.random.default_rng(3)
    p50, p95 = 40.0, 52.0  # a tight service time, cs² from p50/p95
    for servers, rho in ((1, 0.85), (3, 0.85)):
        rate = rho * servers / p50 * 1000.0
        services = lognormal(rng, N, p50, p95)
        poisson = simulate_p95_wait(rng.exponential(1000.0 / rate, N), services, servers)
        model = ggc_wait_ms_at_percentile(servers, rate, service_mean_ms(p50, p95), 95,
                                          cs2=service_scv(p50, p95), ca2=1.0)
        assert 0.9 * poisson <= model <= 1.35 * poisson, (servers, model, poisson)
    # periodic frames below saturation barely wait; the model says so too (under one service time)
    rate = 0.7 / p50 * 1000.0
    periodic = simulate_p95_wait(np.full(N, 1000.0 / rate), lognormal(rng, N, p50, p95))
    model = ggc_wait_ms_at_percentile(1, rate, service_mean_ms(p50, p95), 95, cs2=service_scv(p50, p95), ca2=0.0)
    assert periodic <= model + 1.0 and model < p50, (model, periodic)


def test_shared_device_two_pieces_one_server():
    """A screener (5 ms) and a classifier (60 ms) on one device, Poisson arrivals each."""
    rng = np.random.default_rng(4)
    a = Stream(arrival_rps=40.0, service_ms=service_mean_ms(5.0, 6.0), scv=service_scv(5.0, 6.0))
    b = Stream(arrival_rps=8.0, service_ms=service_mean_ms(60.0, 70.0), scv=service_scv(60.0, 70.0))
    rate = a.arrival_rps + b.arrival_rps
    kinds = rng.random(N) < a.arrival_rps / rate
    services = np.where(kinds, lognormal(rng, N, 5.0, 6.0), lognormal(rng, N, 60.0, 70.0))
    sim = simulate_p95_wait(rng.exponential(1000.0 / rate, N), services)
    exact = shared_wait_ms_at_percentile([a, b], 95, ca2=1.0)
    assert 0.9 * sim <= exact <= 1.35 * sim, (exact, sim)
    # each piece alone would wait far less: the loads add up
    assert shared_wait_ms_at_percentile([a], 95) < 0.5 * exact
    # the per-option bound (the other piece at its largest load, busy share capped) covers it
    for own, other in ((a, b), (b, a)):
        bound = shared_wait_bound_ms(own, [other], 95, ca2=1.0, cap=0.7, other_load=other.load)
        assert bound >= exact - 1e-9 and bound >= 0.99 * sim


def test_batch_fill_periodic_is_constant_and_poisson_is_gamma():
    assert batch_fill_ms(4, 100.0, 95, ca2=0.0) == pytest.approx(30.0)
    assert batch_fill_ms(4, 100.0, 95, ca2=1.0) == pytest.approx(62.96, abs=0.01)


def test_pooled_wait_reduces_to_the_single_class_and_the_single_server_formulas():
    s = Stream(300.0, service_mean_ms(2.0, 2.6), service_scv(2.0, 2.6))
    for servers in (1, 2, 5):
        one = ggc_wait_ms_at_percentile(servers, 300.0, s.service_ms, 95, cs2=s.scv, ca2=0.8)
        assert pooled_wait_ms_at_percentile(servers, [s], 95, ca2=0.8) == pytest.approx(one)
        # two pieces with the same service time are one stream at their summed rate
        half = Stream(150.0, s.service_ms, s.scv)
        assert pooled_wait_ms_at_percentile(servers, [half, half], 95, ca2=0.8) == pytest.approx(one)
    a = Stream(40.0, service_mean_ms(5.0, 6.0), service_scv(5.0, 6.0))
    b = Stream(8.0, service_mean_ms(60.0, 70.0), service_scv(60.0, 70.0))
    assert pooled_wait_ms_at_percentile(1, [a, b], 95, ca2=1.0) == pytest.approx(
        shared_wait_ms_at_percentile([a, b], 95, ca2=1.0))
    # pieces whose jobs arrive on their own: the co-located wait is the pooled one
    assert colocated_waits_ms(2, [[a], [b]], [[6.0], [70.0]], 95) == [
        [pooled_wait_ms_at_percentile(2, [a, b], 95)]] * 2


def test_two_pieces_in_a_pool_of_three_replicas():
    """A 4 ms and a 20 ms piece (log-normal), independent Poisson arrivals, 3 replicas at 2/3."""
    rng = np.random.default_rng(6)
    a = Stream(300.0, service_mean_ms(4.0, 5.0), service_scv(4.0, 5.0))
    b = Stream(40.0, service_mean_ms(20.0, 26.0), service_scv(20.0, 26.0))
    rate = a.arrival_rps + b.arrival_rps
    kinds = rng.random(N) < a.arrival_rps / rate
    services = np.where(kinds, lognormal(rng, N, 4.0, 5.0), lognormal(rng, N, 20.0, 26.0))
    sim = simulate_p95_wait(rng.exponential(1000.0 / rate, N), services, 3)
    model = pooled_wait_ms_at_percentile(3, [a, b], 95, ca2=1.0)
    assert 0.9 * sim <= model <= 1.35 * sim, (model, sim)


@pytest.mark.parametrize("servers,siblings,rho", [(1, 4, 0.1), (1, 4, 0.4), (1, 2, 0.7), (2, 2, 0.4),
                                                  (3, 4, 0.5), (4, 4, 0.7)])
def test_a_fan_out_in_one_pool(servers, siblings, rho):
    """`siblings` pieces (1 ms p50, 1.3 ms p95) fed by one predecessor: each request's jobs reach
    the pool at one instant. Treating them as independent arrivals would be 2-5x too low."""
    rng = np.random.default_rng(7)
    rate = rho * servers * 1000.0 / siblings  # requests per second
    gaps = np.zeros(N)
    gaps[::siblings] = rng.exponential(1000.0 / rate, N // siblings)
    sim = simulate_p95_wait(gaps, lognormal(rng, N, 1.0, 1.3), servers)
    s = Stream(rate, service_mean_ms(1.0, 1.3), service_scv(1.0, 1.3))
    model = colocated_waits_ms(servers, [[s] * siblings], [[1.3] * siblings], 95)[0]
    assert len(set(model)) == 1
    assert 0.95 * sim <= model[0] <= 1.75 * sim, (model[0], sim)
    assert pooled_wait_ms_at_percentile(servers, [s] * siblings, 95) < 0.6 * sim
