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
- an offer is open to the pieces with an own option on it that survives exact pruning
  (`prune_dominated_options`), at most `MAX_CANDIDATES` (12) of them: those whose own pool
  would waste the most there (their cheapest own option in the region less their load's share
  of replicas on this offer); the same whether or not the options were pruned;
- one runtime per piece on the offer's hardware, at batch 1: the lowest p50 (then p95, memory,
  name), the one that sizes the pool smallest;
- subsets of 2 to `solver.colocate_max_pieces` pieces (default 4) whose batch-1 rows fit the
  instance's memory together;
- replica counts from the fewest that keep the pool's utilisation (the members' p50 loads summed,
  as for a pool of one) under the cap, up to `solver.max_extra_replicas` more;
- only subsets whose pool at its fewest replicas costs less than their pieces apart in its
  region (their own cheapest options, or any split of them into smaller pools and own
  options), however slow apart: sharing is offered to save money, and then at every replica
  count above as for a pool of one (so a what-if at another load still finds the pool bought).
  A subset that saves nothing is not offered even where pooling would cut its wait, though
  under a tight SLO that can be the cheaper way to meet it (a synthetic ten-model instance with
  its SLO binding: $3,622 with every such pool, found with a hint in 60 s without proving it,
  against $3,913 within this bound, optimal in 2 s);
- at most `solver.colocate_max_pools` pools (default 400), those that save the most against
  their pieces apart in any region first. `bench/colocate_scale.py` on synthetic instances of
  7-12 models and 12-15 offers: 400 reached the optimum that 1,000 did (ten tiny models: $487
  apart, $158 shared; seven models at 10 sites: $1,512 apart, $503 shared), in seconds; no cap
  (14,000-39,000 options) left CP-SAT without a plan in 30 s;
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

from placement.problem.offers import HOURS_PER_MONTH, cloud_location, offer_memory_mb, price
from placement.problem.options import OptionInputs, common_fields, prune_dominated_options
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
MAX_CANDIDATES = 12  # pieces searched for pools on one offer: C(12, 2..4) = 781 subsets


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
        return cloud_location(self.offer)

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
                      options: Mapping[str, Sequence[Option]], *, max_pieces: int,
                      max_pools: int) -> dict[str, list[Option]]:
    """`options` (piece -> its own options) with every piece's options in co-located pools added.
    `calls`: calls per request of each whole model that may share a pool, in dataflow order;
    `inputs_of`: the nodes each one takes its input from (`arrival_groups`)."""
    pools = shared_pools(inputs, calls, inputs_of, options, max_pieces=max_pieces, max_pools=max_pools)
    if inputs.prune:
        pools = undominated(pools, options)
    out = {piece: list(opts) for piece, opts in options.items()}
    for pool in pools:
        for i, member in enumerate(pool.members):
            out[member.piece].append(member_option(inputs, pool, i))
    return out


def shared_pools(inputs: OptionInputs, calls: Mapping[str, float], inputs_of: Mapping[str, frozenset],
                 options: Mapping[str, Sequence[Option]], *, max_pieces: int, max_pools: int) -> list[SharedPool]:
    """Every co-located pool within the bound in the module's docstring: first each subset's
    replica counts on each offer (from its loads alone), then, below what its pieces cost apart,
    the pools with their waits."""
    # each piece's own cloud options that survive exact pruning (the same whether or not
    # `options` were), and the cheapest of them in each region
    own: dict[str, list[Option]] = {}
    cheapest: dict[tuple[tuple[str, ...], str], float] = {}
    for piece, opts in options.items():
        kept = opts if inputs.prune else prune_dominated_options(list(opts))
        own[piece] = [o for o in kept if o.tier == "cloud" and o.head is None and o.pool is None]
        for o in own[piece]:
            cheapest[(piece,), o.location] = min(cheapest.get(((piece,), o.location), math.inf), o.monthly_usd)
    # each offer open to the pieces with an own option on it...
    open_to: dict[str, list[Member]] = {}
    for offer in inputs.offers:
        if offer[ot.TIER] == "cloud" and price(offer, inputs.pricing_column) is not None:
            open_to[offer[ot.OFFER]] = [m for m in _members(inputs, calls, offer)
                                        if any(o.offer == offer[ot.OFFER] for o in own[m.piece])]
    by_id = {o[ot.OFFER]: o for o in inputs.offers}
    sized: list[tuple[dict, tuple[Member, ...], range]] = []
    for offer_id, members in open_to.items():
        offer = by_id[offer_id]
        location = cloud_location(offer)
        # ...at most MAX_CANDIDATES of them: those whose own pool here would waste the most
        wasted = sorted(members, key=lambda m: _share_usd(inputs, offer, m) - cheapest[(m.piece,), location])
        chosen = {m.piece for m in wasted[:MAX_CANDIDATES]}
        members = [m for m in members if m.piece in chosen]
        for size in range(2, min(max_pieces, len(members)) + 1):
            for subset in combinations(members, size):
                counts = _replica_counts(inputs, offer, subset)
                if counts:
                    sized.append((offer, subset, counts))
    # ...and the cheapest pool of each subset in each region
    for offer, subset, counts in sized:
        key = (tuple(m.piece for m in subset), cloud_location(offer))
        cheapest[key] = min(cheapest.get(key, math.inf), counts[0] * _replica_usd(inputs, offer))
    anywhere: dict[tuple[tuple[str, ...], str], float] = {}  # the same, in any region ("")
    for (pieces, _), usd in cheapest.items():
        anywhere[pieces, ""] = min(anywhere.get((pieces, ""), math.inf), usd)
    # the subsets whose fewest replicas cost less than their pieces apart in their region, at
    # every replica count; if there are more than `max_pools`, first those that save the most
    # against their pieces apart anywhere (ties: cheaper, then by id)
    saving = []
    for offer, subset, counts in sized:
        pieces = tuple(m.piece for m in subset)
        apart, apart_anywhere = _apart_usd(pieces, cloud_location(offer), cheapest), _apart_usd(pieces, "", anywhere)
        if counts[0] * _replica_usd(inputs, offer) >= apart - _EPS:
            continue
        for r in counts:
            usd = r * _replica_usd(inputs, offer)
            saving.append((usd - apart_anywhere, usd, _pool_id(offer, pieces, r), offer, subset, r))
    saving.sort(key=lambda x: x[:3])
    ca2 = merged_arrival_scv(inputs.arrival_scv, inputs.sites)
    pools: list[SharedPool] = []
    for *_, offer, subset, r in saving[:max_pools]:
        pool = _sized(inputs, offer, subset, r, ca2, arrival_groups([m.piece for m in subset], inputs_of))
        if pool is not None:
            pools.append(pool)
    return pools


def _pool_id(offer: dict, pieces: tuple[str, ...], replicas: int) -> str:
    return f"{offer[ot.OFFER]}/r{replicas}/pool[{'+'.join(pieces)}]"


def _replica_usd(inputs: OptionInputs, offer: dict) -> float:
    return price(offer, inputs.pricing_column) * HOURS_PER_MONTH


def _share_usd(inputs: OptionInputs, offer: dict, member: Member) -> float:
    """What `member` would cost on `offer` in a perfectly shared pool: its load's replicas."""
    return member.load / inputs.utilisation_cap * _replica_usd(inputs, offer)


def _members(inputs: OptionInputs, calls: Mapping[str, float], offer: dict) -> list[Member]:
    out = []
    for piece, n in calls.items():
        rows = [r for r in inputs.runtimes.batches(piece, offer[ot.HARDWARE]).get(1, ())
                if float(r[pt.MEMORY_MB]) <= offer_memory_mb(offer)]
        if not rows:
            continue
        row = min(rows, key=lambda r: (float(r[pt.LATENCY_MS_P50]), float(r[pt.LATENCY_MS_P95]),
                                       float(r[pt.MEMORY_MB]), str(r[pt.RUNTIME])))
        p50, p95 = float(row[pt.LATENCY_MS_P50]), float(row[pt.LATENCY_MS_P95])
        stream = Stream(inputs.total_rps * n, service_mean_ms(p50, p95), service_scv(p50, p95))
        out.append(Member(piece, row, p50, stream, p95 * n, float(row[pt.MEMORY_MB])))
    return out


def _replica_counts(inputs: OptionInputs, offer: dict, subset: tuple[Member, ...]) -> range:
    """From the fewest replicas that keep the summed p50 loads under the cap (and the mean
    service times under capacity) to `max_extra_replicas` more; empty if the pieces do not fit
    the instance's memory together."""
    if sum(m.memory_mb for m in subset) > offer_memory_mb(offer):
        return range(0)
    fewest = max(1, math.ceil(sum(m.load for m in subset) / inputs.utilisation_cap - _EPS))
    busy = sum(m.stream.load for m in subset)  # at the mean: the queue is stable above it
    return range(max(fewest, math.floor(busy) + 1), fewest + inputs.max_extra_replicas + 1)


def _apart_usd(pieces: tuple[str, ...], location: str, cheapest: dict) -> float:
    """The least `pieces` cost in `location` split into at least two parts (each a piece's own
    option or a pool of several), however slow: what a pool of them must cost less than."""
    k = len(pieces)
    best = {0: 0.0}
    for mask in range(1, 1 << k):
        low, value, sub = mask & -mask, math.inf, mask
        while sub:
            if sub & low and sub != (1 << k) - 1:
                part = tuple(pieces[i] for i in range(k) if sub >> i & 1)
                value = min(value, cheapest.get((part, location), math.inf) + best[mask ^ sub])
            sub = (sub - 1) & mask
        best[mask] = value
    return best[(1 << k) - 1]


def _sized(inputs: OptionInputs, offer: dict, subset: tuple[Member, ...], replicas: int, ca2: float,
           groups: list[list[int]]) -> SharedPool | None:
    """The pool of `subset` on `offer` at this replica count, its waits settled."""
    waits = pool_waits_ms(replicas, [m.stream for m in subset], [m.compute_ms_p95 for m in subset], groups,
                          inputs.percentile, ca2)
    if any(math.isinf(w) for w in waits):
        return None
    return SharedPool(_pool_id(offer, tuple(m.piece for m in subset), replicas), offer, replicas, subset,
                      tuple(waits), sum(m.load for m in subset) / replicas, replicas * _replica_usd(inputs, offer))


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
        pool=pool.id, pool_pieces=pool.pieces, pool_memory_mb=offer_memory_mb(offer),
        **common_fields(inputs, member.piece, offer, member.row),
    )


@dataclass(frozen=True)
class _Apart:
    """What a pool's pieces cost elsewhere in its region: their own cloud options and the other
    pools, cheapest first."""

    own: dict  # (piece, location) -> [(monthly USD, latency ms)]
    by_subset: dict  # (pieces, location) -> [SharedPool]

    @classmethod
    def of(cls, pools: list[SharedPool], options: Mapping[str, Sequence[Option]]) -> _Apart:
        own: dict[tuple[str, str], list[tuple[float, float]]] = {}
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
        return cls(own, by_subset)


def undominated(pools: list[SharedPool], options: Mapping[str, Sequence[Option]]) -> list[SharedPool]:
    """The pools whose members cannot all run in the same region for no more money and each no
    slower, in the pieces' own cloud options, smaller pools or another pool of the same pieces
    (the cheapest such cover, over every way of splitting the pool's pieces)."""
    apart = _Apart.of(pools, options)
    return [pool for pool in pools if _cover_usd(pool, apart) > pool.monthly_usd + _EPS]


def _cover_usd(pool: SharedPool, apart: _Apart) -> float:
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
            return next((c for c, lat in apart.own.get((pieces[i], pool.location), ()) if lat <= bound[i]),
                        math.inf)
        names = tuple(pieces[i] for i in idx)
        for other in apart.by_subset.get((names, pool.location), ()):
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
