"""Waiting time at a server or a pool of identical replicas, for inference (docs/queueing.md).

G/G/c by Allen–Cunneen: the M/M/c (Erlang C) wait scaled by (ca² + cs²) / 2, where cs² is the
squared coefficient of variation of the service time (from the profile's p50 and p95, not an
assumed exponential) and ca² that of the inter-arrival gaps (from the spec's arrival process).
The wait's tail is taken as exponential given that a request waits: P(W > t) = C · exp(-t / w),
w = (ca² + cs²) / 2 / (c·mu - lambda). Pieces on one site device share one server: their streams
merge into one (loads add up).

Kept apart and pure because both the solver's precomputed options and the independent checker
call it: one formula, one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Z95 = 1.6448536269514722  # standard normal quantile at 0.95

ARRIVAL_SCV = {"poisson": 1.0, "periodic": 0.0}


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


def service_scv(p50_ms: float, p95_ms: float) -> float:
    """Squared coefficient of variation of a service time with this median and 95th percentile,
    as a log-normal: sigma = ln(p95 / p50) / z95, cs² = exp(sigma²) - 1. Equal percentiles: 0
    (deterministic); an exponential service time would need p95 = 4.3 x p50."""
    if p50_ms <= 0 or p95_ms <= p50_ms:
        return 0.0
    sigma = math.log(p95_ms / p50_ms) / Z95
    return math.expm1(sigma * sigma)


def service_mean_ms(p50_ms: float, p95_ms: float) -> float:
    """Mean of that log-normal: p50 x exp(sigma² / 2) (1 % above p50 at p95 = 1.3 x p50)."""
    return p50_ms * math.sqrt(1.0 + service_scv(p50_ms, p95_ms))


def arrival_scv(process: str = "poisson", burstiness: float | None = None) -> float:
    """ca² of one site's inter-arrival gaps: Poisson 1, periodic 0, or the spec's burstiness."""
    return float(burstiness) if burstiness is not None else ARRIVAL_SCV[process]


def merged_arrival_scv(ca2: float, streams: float) -> float:
    """ca² of `streams` independent equal-rate sources of ca² `ca2` merged (a pool serving many
    sites). Periodic sources with random phases merge into gaps with ca² = (n-1)/(n+1) exactly
    (spacings of n uniform points on a circle); between 0 and 1 we interpolate the same way.
    Burstier than Poisson: kept as is (conservative)."""
    if ca2 >= 1.0 or streams <= 1.0:
        return ca2
    return 1.0 - (1.0 - ca2) * 2.0 / (streams + 1.0)


def ggc_wait_ms_at_percentile(servers: int, arrival_rps: float, service_ms: float, percentile: float,
                              *, cs2: float = 1.0, ca2: float = 1.0) -> float:
    """Waiting time not exceeded by `percentile`% of arrivals at `servers` replicas (G/G/c,
    Allen–Cunneen). cs2 = ca2 = 1 is M/M/c exactly. Infinite when the pool is unstable."""
    if arrival_rps <= 0 or service_ms <= 0:
        return 0.0
    mu = 1000.0 / service_ms
    if arrival_rps >= servers * mu:
        return math.inf
    p_wait = erlang_c(servers, arrival_rps / mu)
    tail = 1.0 - percentile / 100.0
    scale = (ca2 + cs2) / 2.0
    if p_wait <= tail or scale <= 0:
        return 0.0
    return 1000.0 * scale * math.log(p_wait / tail) / (servers * mu - arrival_rps)


def wait_ms_at_percentile(servers: int, arrival_rps: float, service_ms: float, percentile: float) -> float:
    """M/M/c: P(W > t) = C(c, a) * exp(-(c*mu - lambda) * t) (the exponential special case)."""
    return ggc_wait_ms_at_percentile(servers, arrival_rps, service_ms, percentile)


@dataclass(frozen=True)
class Stream:
    """One kind of job at a server: its arrival rate, mean service time and service cs²."""

    arrival_rps: float
    service_ms: float
    scv: float = 0.0

    @property
    def load(self) -> float:
        return self.arrival_rps * self.service_ms / 1000.0


def merge_streams(streams: Iterable[Stream]) -> tuple[float, float, float] | None:
    """Several job streams at one queue as one: (summed rate, rate-weighted mean service time,
    rate-weighted second moment of it); None when no stream sends anything."""
    streams = [s for s in streams if s.arrival_rps > 0]
    if not streams:
        return None
    rate = sum(s.arrival_rps for s in streams)
    mean = sum(s.arrival_rps * s.service_ms for s in streams) / rate
    second = sum(s.arrival_rps * s.service_ms ** 2 * (1.0 + s.scv) for s in streams) / rate
    return rate, mean, second


def shared_wait_ms_at_percentile(streams: Iterable[Stream], percentile: float, *, ca2: float = 1.0,
                                 extra_load: float = 0.0) -> float:
    """Wait at one server shared by several streams (a site device), FCFS: the streams merge
    into one with the summed rate, the rate-weighted mean and second moment of the service
    time. `extra_load`: busy share taken by work not in `streams` (a split model's head)."""
    merged = merge_streams(streams)
    if merged is None:
        return 0.0
    rate, mean, second = merged
    rho = rate * mean / 1000.0 + extra_load
    if rho >= 1.0:
        return math.inf
    return _single_server_wait(rho, (ca2 * mean ** 2 + second - mean ** 2) / (2.0 * mean), percentile)


def _single_server_wait(rho: float, residual_ms: float, percentile: float) -> float:
    """P(W > 0) = rho, the wait given one waits exponential with mean residual / (1 - rho)."""
    tail = 1.0 - percentile / 100.0
    if rho <= tail or residual_ms <= 0:
        return 0.0
    if rho >= 1.0:
        return math.inf
    return residual_ms / (1.0 - rho) * math.log(rho / tail)


def shared_wait_bound_ms(own: Stream, other_jobs: Iterable[Stream], percentile: float, *, ca2: float,
                         cap: float, other_load: float) -> float:
    """An upper bound on `own`'s wait at a site device, whichever other pieces end up sharing it:
    `other_load` is the sum of every other piece's largest load there (split heads included),
    and the device's busy share is at most `cap` (the model keeps its utilisation under it);
    the residual work an arrival finds is at most the largest per-job term over `other_jobs`
    (every option of every other piece there). Exact when no other piece can share."""
    jobs = [own, *other_jobs]
    rho = max(own.load, min(cap, own.load + other_load))
    if rho >= 1.0:
        return math.inf
    spread = max(s.service_ms * (1.0 + s.scv) for s in jobs) / 2.0
    arrival = (ca2 - 1.0) / 2.0 * (max if ca2 >= 1.0 else min)(s.service_ms for s in jobs)
    return _single_server_wait(rho, spread + arrival, percentile)


def batch_fill_ms(batch: int, arrival_rps: float, percentile: float, *, ca2: float = 1.0) -> float:
    """How long the first request of a batch waits for the other `batch - 1` to arrive.

    The time for k more arrivals is taken as Gamma with the mean k / rate and cs² ca2 / k (a
    sum of k gaps): Poisson gives Gamma(k, rate) exactly, periodic the constant k / rate. Its
    percentile is the wait not exceeded by `percentile`% of batches (the first waits longest).
    """
    if batch <= 1:
        return 0.0
    if arrival_rps <= 0:
        return math.inf
    k = batch - 1
    if ca2 <= 0:
        return 1000.0 * k / arrival_rps
    from scipy.special import gammaincinv

    shape = k / ca2
    return 1000.0 * float(gammaincinv(shape, percentile / 100.0)) * ca2 / arrival_rps


def pooled_wait_ms_at_percentile(servers: int, streams: Iterable[Stream], percentile: float, *,
                                 ca2: float = 1.0) -> float:
    """Wait at a pool of `servers` identical replicas that several pieces share (co-located in one
    server process per replica), FCFS over all their jobs: a multi-class G/G/c taken as one merged
    stream (Allen–Cunneen) with the summed arrival rate and the rate-weighted mean and second
    moment of the service time, so every piece in the pool waits the same. One stream: exactly
    `ggc_wait_ms_at_percentile`; one server: exactly `shared_wait_ms_at_percentile`. `ca2`: the
    merged arrivals' ca², taken as one piece's (the pieces' jobs are not modelled as arriving
    together; docs/queueing.md)."""
    merged = merge_streams(streams)
    if merged is None:
        return 0.0
    rate, mean, second = merged
    if mean <= 0:
        return 0.0
    return ggc_wait_ms_at_percentile(servers, rate, mean, percentile, cs2=second / mean ** 2 - 1.0, ca2=ca2)


def together_arrival_scv(ca2: float, groups: Sequence[Sequence[Stream]]) -> float:
    """ca² of a pool's merged job arrivals when the jobs of each group come together, one per
    stream per request (the siblings of a fan-out get their inputs at one instant): a group of k
    streams sends k - 1 zero gaps and then a request gap, ca² k (1 + ca2) - 1; the groups' streams
    superposed, rate-weighted as QNA does. Every group of one stream: `ca2` itself."""
    rates = [sum(s.arrival_rps for s in g) for g in groups]
    total = sum(rates)
    if total <= 0:
        return ca2
    return sum(r / total * (len(g) * (1.0 + ca2) - 1.0) for r, g in zip(rates, groups))


def colocated_waits_ms(servers: int, groups: Sequence[Sequence[Stream]], work_ms: Sequence[Sequence[float]],
                       percentile: float, *, ca2: float = 1.0) -> list[list[float]]:
    """Each stream's wait in a pool of `servers` replicas shared by co-located pieces, FCFS. The
    streams of one group get their jobs together (a fan-out's siblings; `work_ms`: each one's work
    per request at the percentile). The larger of two approximations, each close where the other
    is not (docs/queueing.md): the merged queue with the gaps the groups make
    (`together_arrival_scv`), which dominates at high load; and the merged queue of independent
    arrivals plus the siblings ahead of a job in its own group, ceil((k - 1) / c) times the largest
    sibling's work, which dominates at low load. Groups of one: `pooled_wait_ms_at_percentile`."""
    streams = [s for g in groups for s in g]
    queued = pooled_wait_ms_at_percentile(servers, streams, percentile, ca2=together_arrival_scv(ca2, groups))
    alone = pooled_wait_ms_at_percentile(servers, streams, percentile, ca2=ca2)
    out = []
    for work in work_ms:
        ahead = math.ceil((len(work) - 1) / servers)
        out.append([max(queued, alone + ahead * max((w for j, w in enumerate(work) if j != i), default=0.0))
                    for i in range(len(work))])
    return out
