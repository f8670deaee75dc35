"""Co-located pools: several different pieces in one cloud pool of an instance type in a region
(one server process per replica running all of them, as Triton does), sized for their loads
together: their utilisations add up under the cap, their memory within the instance's, and they
wait in one queue over their merged load (`placement.queueing.colocated_waits_ms`: a multi-class
G/G/c whose jobs of one request may arrive together, as a fan-out's siblings do).

Each pool is settled here per (piece subset, offer, replica count), like every other option, so
the CP-SAT model stays linear: each member gets an option naming the pool (`Option.pool`,
`Option.pool_pieces`), and the model turns the members' options on together and pays the pool
once, the mechanism a pool shared by fleet segments uses. The planner picks shared or separate
pools by cost; a pool per piece stays the special case it was.

What is enumerated (the bound):
- uniform fleets only: in a mixed fleet a pool already serves sets of segments, and pools over
  sets of segments times sets of pieces are not enumerated;
- whole models only: a split model's tail keeps a pool of its own;
- one runtime per piece on the offer's hardware, at batch 1: the lowest p50 (then p95, memory,
  name), the one that sizes the pool smallest;
- subsets of 2 to `solver.colocate_max_pieces` pieces (default 4) whose batch-1 rows fit the
  instance's memory together;
- replica counts from the fewest that keep the pool's utilisation (the members' p50 loads summed,
  as for a pool of one) under the cap, up to `solver.max_extra_replicas` more;
- with pruning on (the default), a pool is dropped when its members can run in the same region
  for no more money and each no slower: in their own options, in smaller pools, or in another
  pool of the same pieces. Exact: no piece changes location, so no transfer, egress or device
  term changes, and the swap keeps every constraint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations

from placement.problem.offers import HOURS_PER_MONTH, price
from placement.problem.options import OptionInputs, common_fields
from placement.problem.records import Option
from placement.queueing import (
    Stream,
    colocated_waits_ms,
    merged_arrival_scv,
    service_mean_ms,
    service_scv,
)
from pricing import table as ot
from profiles import table as pt

_EPS = 1e-9


@dataclass(frozen=True)
class Member:
    """One piece as it would run in a co-located pool on one offer."""

    piece: str
    row: dict  # the batch-1 profile row of its runtime there
    p50_ms: float
    stream: Stream  # calls per second into the pool, mean service time, its cs²
    compute_ms_p95: float  # x calls per request
    memory_mb: float

    @property
    def load(self) -> float:
        """Replicas' worth of work at p50 (the convention utilisation follows everywhere)."""
        return self.stream.arrival_rps * self.p50_ms / 1000.0


@dataclass(frozen=True)
class SharedPool:
    """One co-located pool: a subset of pieces on an offer at a replica count."""

    id: str
    offer: dict
    replicas: int
    members: tuple[Member, ...]
    waits_ms: tuple[float, ...]  # each member's, in order
    utilisation: float  # per replica, the members' loads summed
    monthly_usd: float

    @property
    def pieces(self) -> tuple[str, ...]:
        return tuple(m.piece for m in self.members)

    @property
    def location(self) -> str:
        return f"{self.offer[ot.PROVIDER]}:{self.offer[ot.REGION]}"

    def latency_ms(self, i: int) -> float:
        return self.members[i].compute_ms_p95 + self.waits_ms[i]


def arrival_groups(pieces: Sequence[str], inputs_of: Mapping[str, frozenset]) -> list[list[int]]:
    """Indices of `pieces` grouped by where their inputs come from: pieces fed by the same nodes
    (a fan-out's siblings, or several fed by the source) get each request's inputs at one
    instant, so their jobs reach a shared pool together."""
    groups: dict[frozenset, list[int]] = {}
    for i, piece in enumerate(pieces):
        groups.setdefault(frozenset(inputs_of.get(piece, ())), []).append(i)
    return list(groups.values())


def pool_waits_ms(replicas: int, streams: Sequence[Stream], work_ms: Sequence[float], groups: list[list[int]],
                  percentile: float, ca2: float) -> list[float]:
    """Each member's wait in one pool (`colocated_waits_ms` over its arrival groups), in order."""
    waits = colocated_waits_ms(replicas, [[streams[i] for i in g] for g in groups],
                               [[work_ms[i] for i in g] for g in groups], percentile, ca2=ca2)
    out = [0.0] * len(streams)
    for g, w in zip(groups, waits):
        for i, value in zip(g, w):
            out[i] = value
    return out


def colocated_options(inputs: OptionInputs, calls: Mapping[str, float], inputs_of: Mapping[str, frozenset],
                      options: Mapping[str, Sequence[Option]], *, max_pieces: int) -> dict[str, list[Option]]:
    """`options` (piece -> its own options) with every piece's options in co-located pools added.
    `calls`: calls per request of each whole model that may share a pool, in dataflow order;
    `inputs_of`: the nodes each one takes its input from (`arrival_groups`)."""
    pools = shared_pools(inputs, calls, inputs_of, max_pieces=max_pieces)
    if inputs.prune:
        pools = undominated(pools, options)
    out = {piece: list(opts) for piece, opts in options.items()}
    for pool in pools:
        for i, member in enumerate(pool.members):
            out[member.piece].append(member_option(inputs, pool, i))
    return out


def shared_pools(inputs: OptionInputs, calls: Mapping[str, float], inputs_of: Mapping[str, frozenset], *,
                 max_pieces: int) -> list[SharedPool]:
    """Every co-located pool within the bound in the module's docstring."""
    ca2 = merged_arrival_scv(inputs.arrival_scv, inputs.sites)
    pools: list[SharedPool] = []
    for offer in inputs.offers:
        if offer[ot.TIER] != "cloud" or price(offer, inputs.pricing_column) is None:
            continue
        members = _members(inputs, calls, offer)
        for size in range(2, min(max_pieces, len(members)) + 1):
            for subset in combinations(members, size):
                pools += _sized(inputs, offer, subset, ca2, arrival_groups([m.piece for m in subset], inputs_of))
    return pools


def _offer_mb(offer: dict) -> float:
    return float(offer[ot.MEMORY_GIB]) * 1024.0


def _members(inputs: OptionInputs, calls: Mapping[str, float], offer: dict) -> list[Member]:
    out = []
    for piece, n in calls.items():
        rows = [r for r in inputs.runtimes.batches(piece, offer[ot.HARDWARE]).get(1, ())
                if float(r[pt.MEMORY_MB]) <= _offer_mb(offer)]
        if not rows:
            continue
        row = min(rows, key=lambda r: (float(r[pt.LATENCY_MS_P50]), float(r[pt.LATENCY_MS_P95]),
                                       float(r[pt.MEMORY_MB]), str(r[pt.RUNTIME])))
        p50, p95 = float(row[pt.LATENCY_MS_P50]), float(row[pt.LATENCY_MS_P95])
        stream = Stream(inputs.total_rps * n, service_mean_ms(p50, p95), service_scv(p50, p95))
        out.append(Member(piece, row, p50, stream, p95 * n, float(row[pt.MEMORY_MB])))
    return out


def _sized(inputs: OptionInputs, offer: dict, subset: tuple[Member, ...], ca2: float,
           groups: list[list[int]]) -> list[SharedPool]:
    """The pool of `subset` on `offer` at each replica count worth buying (none if it cannot fit)."""
    if sum(m.memory_mb for m in subset) > _offer_mb(offer):
        return []
    load = sum(m.load for m in subset)
    fewest = max(1, math.ceil(load / inputs.utilisation_cap - _EPS))
    hourly = price(offer, inputs.pricing_column)
    tag = "+".join(m.piece for m in subset)
    out = []
    for replicas in range(fewest, fewest + inputs.max_extra_replicas + 1):
        waits = pool_waits_ms(replicas, [m.stream for m in subset], [m.compute_ms_p95 for m in subset], groups,
                              inputs.percentile, ca2)
        if any(math.isinf(w) for w in waits):
            continue  # the mean service times are over capacity (p50 loads were not)
        out.append(SharedPool(f"{offer[ot.OFFER]}/r{replicas}/pool[{tag}]", offer, replicas, subset,
                              tuple(waits), load / replicas, replicas * hourly * HOURS_PER_MONTH))
    return out


def member_option(inputs: OptionInputs, pool: SharedPool, i: int) -> Option:
    """The option of `pool`'s i-th member: its own compute, stream and wait, the pool's load and
    price."""
    offer, member = pool.offer, pool.members[i]
    others = ", ".join(p for p in pool.pieces if p != member.piece)
    return Option(
        id=f"{offer[ot.OFFER]}/{member.row[pt.RUNTIME]}/b1/r{pool.replicas}/pool[{'+'.join(pool.pieces)}]",
        location=pool.location, replicas=pool.replicas, compute_ms_p95=member.compute_ms_p95,
        wait_ms=pool.waits_ms[i], utilisation=pool.utilisation, arrival_rps=member.stream.arrival_rps,
        service_ms=member.stream.service_ms, service_scv=member.stream.scv,
        wait_model=f"G/G/{pool.replicas} (Allen-Cunneen) over the merged load of a pool shared with {others}"
                   " (jobs of one request arriving together counted)",
        monthly_usd=pool.monthly_usd, hourly_usd=price(offer, inputs.pricing_column),
        hourly_usd_by_model={m: price(offer, c) for m, c in ot.PRICING_MODELS.items()},
        pool=pool.id, pool_pieces=pool.pieces, pool_memory_mb=_offer_mb(offer),
        **common_fields(inputs, member.piece, offer, member.row),
    )


def undominated(pools: list[SharedPool], options: Mapping[str, Sequence[Option]]) -> list[SharedPool]:
    """The pools whose members cannot all run in the same region for no more money and each no
    slower, in the pieces' own cloud options, smaller pools or another pool of the same pieces
    (the cheapest such cover, over every way of splitting the pool's pieces)."""
    own: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (piece, location) -> (cost, latency)
    for piece, opts in options.items():
        for o in opts:
            if o.tier == "cloud" and o.head is None and o.pool is None:
                own.setdefault((piece, o.location), []).append((o.monthly_usd, o.latency_ms))
    by_subset: dict[tuple[tuple[str, ...], str], list[SharedPool]] = {}
    for pool in pools:
        by_subset.setdefault((pool.pieces, pool.location), []).append(pool)
    for costs in own.values():
        costs.sort()
    for found in by_subset.values():
        found.sort(key=lambda p: (p.monthly_usd, p.id))
    return [pool for pool in pools if _cover_usd(pool, own, by_subset) > pool.monthly_usd + _EPS]


def _cover_usd(pool: SharedPool, own: dict, by_subset: dict) -> float:
    """The cheapest way to run `pool`'s pieces in its region, each no slower, without `pool`."""
    pieces, k = pool.pieces, len(pool.pieces)
    bound = [pool.latency_ms(i) + _EPS for i in range(k)]
    full = (1 << k) - 1

    @cache
    def block(mask: int) -> float:
        """The cheapest single option (one piece) or pool (several) running exactly these pieces."""
        idx = [i for i in range(k) if mask >> i & 1]
        if len(idx) == 1:
            i = idx[0]
            return next((c for c, lat in own.get((pieces[i], pool.location), ()) if lat <= bound[i]), math.inf)
        names = tuple(pieces[i] for i in idx)
        for other in by_subset.get((names, pool.location), ()):
            if other is pool or not all(other.latency_ms(j) <= bound[i] for j, i in enumerate(idx)):
                continue
            if mask == full and not _ahead(other, pool):
                continue  # the same pieces, no better anywhere: only the first of equals stays
            return other.monthly_usd
        return math.inf

    best = {0: 0.0}
    for mask in range(1, full + 1):
        low, value, sub = mask & -mask, math.inf, mask
        while sub:
            if sub & low:
                value = min(value, block(sub) + best[mask ^ sub])
            sub = (sub - 1) & mask
        best[mask] = value
    return best[full]


def _ahead(other: SharedPool, pool: SharedPool) -> bool:
    """`other` (the same pieces, no slower for any) beats `pool` or ties it and comes first."""
    if other.monthly_usd < pool.monthly_usd - _EPS:
        return True
    if any(other.latency_ms(i) < pool.latency_ms(i) - _EPS for i in range(len(pool.members))):
        return True
    return other.id < pool.id
