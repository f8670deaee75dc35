"""Options of one piece: every (offer, runtime, batch, replicas) it can run as, with the
non-linear parts (queueing, batch fill, replica counts) settled per option."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from placement.problem.offers import HOURS_PER_MONTH, EdgeDevice, cloud_location, offer_memory_mb, price
from placement.problem.records import Option
from placement.problem.runtimes import RuntimeIndex, runtime_front
from placement.queueing import (
    Stream,
    batch_fill_ms,
    ggc_wait_ms_at_percentile,
    merged_arrival_scv,
    service_mean_ms,
    service_scv,
    shared_wait_bound_ms,
    shared_wait_ms_at_percentile,
)
from pricing import table as ot
from profiles import table as pt

if TYPE_CHECKING:
    from placement.problem.segments import Lane


@dataclass(frozen=True)
class OptionInputs:
    """Everything option generation reads, settled once per problem."""

    offers: tuple[dict, ...]  # candidate offer records (`candidate_offers`)
    runtimes: RuntimeIndex
    devices: Mapping[str, EdgeDevice]  # device key (`Lane.device_key`) -> device
    tvm_targets: Mapping[str, dict]  # hardware class -> TVM target
    site_rps: float  # requests per second from one site
    total_rps: float  # from all sites
    percentile: float  # the SLO's
    utilisation_cap: float
    max_extra_replicas: int
    pricing_column: str  # the OfferTable column of the spec's pricing model
    prune: bool  # drop runtimes and options that can never be in an optimum
    arrival_scv: float = 1.0  # ca² of one site's inter-arrival gaps (the spec's arrival process)
    sites: int = 1  # sources merged into a cloud pool's arrivals


def piece_options(inputs: OptionInputs, piece: str, calls: float, *, share: float = 1.0,
                  lane: Lane | None = None, tiers=("edge", "cloud")) -> tuple[list[Option], list[str]]:
    """Every option of one profiled piece: cloud pools sized for `share` of all traffic, edge
    options on `lane`'s device (any device, in a uniform fleet). Also the cloud offers left out
    for having no price in the spec's pricing model."""
    out: list[Option] = []
    unpriced: list[str] = []
    for offer in inputs.offers:
        tier = offer[ot.TIER]
        if tier not in tiers:
            continue
        if tier == "edge" and lane is not None and lane.device is not None and offer[ot.OFFER] != lane.device:
            continue
        by_batch = inputs.runtimes.batches(piece, offer[ot.HARDWARE])
        if 1 not in by_batch:
            continue  # no batch-1 profile on this hardware: it cannot run here
        if tier == "edge":
            key = lane.device_key(offer[ot.OFFER]) if lane else offer[ot.OFFER]
            out += _edge_options(inputs, piece, calls, offer, inputs.devices[key], key, by_batch[1])
        elif price(offer, inputs.pricing_column) is None:
            unpriced.append(str(offer[ot.OFFER]))
        else:
            out += _cloud_options(inputs, piece, calls, offer, by_batch, share)
    return out, unpriced


def common_fields(inputs: OptionInputs, piece: str, offer: dict, row: dict) -> dict:
    """The fields of an option that follow from its piece, offer and profile row."""
    hw = offer[ot.HARDWARE]
    band = row[pt.ERROR_BAND]
    return dict(
        piece=piece, offer=offer[ot.OFFER], tier=offer[ot.TIER], provider=offer[ot.PROVIDER],
        region=offer[ot.REGION], instance_type=offer[ot.INSTANCE_TYPE], hardware=hw,
        runtime=row[pt.RUNTIME], batch=int(row[pt.BATCH]), memory_mb=float(row[pt.MEMORY_MB]),
        latency_source=str(row[pt.SOURCE]), error_band=None if pd.isna(band) else float(band),
        price_source=str(offer[ot.PRICE_SOURCE]), price_date=str(offer[ot.PRICE_DATE]),
        tvm_target=inputs.tvm_targets.get(hw),
        runtime_alternatives=inputs.runtimes.alternatives.get((piece, hw), {}),
    )


def _edge_options(inputs: OptionInputs, piece: str, calls: float, offer: dict, device: EdgeDevice,
                  location: str, rows: tuple[dict, ...]) -> list[Option]:
    """One option per runtime on a site's own device: one server whose load is this piece's
    calls from its site (batch 1)."""
    out = []
    arrival = inputs.site_rps * calls
    for row in (runtime_front(rows) if inputs.prune else rows):
        service_ms = float(row[pt.LATENCY_MS_P50])
        if float(row[pt.MEMORY_MB]) > device.memory_mb:
            continue
        util = arrival * service_ms / 1000.0
        if util > inputs.utilisation_cap:
            continue
        scv = service_scv(service_ms, float(row[pt.LATENCY_MS_P95]))
        mean = service_mean_ms(service_ms, float(row[pt.LATENCY_MS_P95]))
        wait = shared_wait_ms_at_percentile([Stream(arrival, mean, scv)], inputs.percentile,
                                            ca2=inputs.arrival_scv)
        out.append(Option(
            id=f"{offer[ot.OFFER]}/{row[pt.RUNTIME]}/b1/r1", location=location, replicas=1,
            compute_ms_p95=float(row[pt.LATENCY_MS_P95]) * calls, wait_ms=wait,
            utilisation=util, monthly_usd=0.0, hourly_usd=0.0, hourly_usd_by_model={},
            arrival_rps=arrival, service_ms=mean, service_scv=scv,
            wait_model="G/G/1 (Allen-Cunneen), alone on the device",
            **common_fields(inputs, piece, offer, row),
        ))
    return out


def bound_shared_device_waits(options: Mapping[str, list[Option]], *, percentile: float,
                              arrival_scv: float, cap: float) -> dict[str, list[Option]]:
    """Each edge option's wait as an upper bound over which pieces end up sharing its device:
    every other piece with an option on that device counts at its largest load (a split head's
    too), the device's busy share at most `cap`. The CP-SAT model stays linear (the wait is a
    number per option); the checker computes the exact wait of the pieces that do share
    (`placement.evaluate`). Only options on the (p50, p95, memory) front count, so the bound
    is the same whether or not dominated options were pruned."""
    streams: dict[str, dict[str, list[Stream]]] = {}  # device -> piece -> its streams there
    heads: dict[str, dict[str, float]] = {}  # device -> piece -> its largest head load there
    for piece, opts in options.items():
        edge = [o for o in opts if o.tier == "edge"]
        for o in _front(edge, lambda o: (o.service_ms, o.compute_ms_p95, o.memory_mb)):
            streams.setdefault(o.location, {}).setdefault(piece, []).append(
                Stream(o.arrival_rps, o.service_ms, o.service_scv))
        split = [o for o in opts if o.head is not None]
        for o in _front(split, lambda o: (o.head.utilisation, o.head.latency_ms, o.head.memory_mb)):
            got = heads.setdefault(o.head.location, {})
            got[piece] = max(got.get(piece, 0.0), o.head.utilisation)
    out: dict[str, list[Option]] = {}
    for piece, opts in options.items():
        new = []
        for o in opts:
            jobs = {p: v for p, v in streams.get(o.location, {}).items() if p != piece}
            head_load = sum(u for p, u in heads.get(o.location, {}).items() if p != piece)
            if o.tier != "edge" or not jobs and not head_load:
                new.append(o)
                continue
            other_load = sum(max(s.load for s in v) for v in jobs.values()) + head_load
            wait = shared_wait_bound_ms(Stream(o.arrival_rps, o.service_ms, o.service_scv),
                                        [s for v in jobs.values() for s in v], percentile,
                                        ca2=arrival_scv, cap=cap, other_load=other_load)
            sharing = ", ".join(sorted({*jobs, *heads.get(o.location, {})} - {piece}))
            new.append(replace(o, wait_ms=wait,
                               wait_model=f"G/G/1 (Allen-Cunneen) bound, device shared with {sharing}"))
        out[piece] = new
    return out


def _front(opts: list[Option], key) -> list[Option]:
    """The options no other option of the same location beats or ties on every count of `key`."""
    return [o for o in opts if not any(
        q.location == o.location and key(q) != key(o) and all(a <= b for a, b in zip(key(q), key(o)))
        for q in opts)]


def _cloud_options(inputs: OptionInputs, piece: str, calls: float, offer: dict, by_batch: dict,
                   share: float) -> list[Option]:
    """A pool of one instance type per (runtime, batch, replica count): integer replicas from the
    fewest that keep utilisation under the cap, up to `max_extra_replicas` more."""
    hourly = price(offer, inputs.pricing_column)
    by_model = {m: price(offer, c) for m, c in ot.PRICING_MODELS.items()}
    arrival = inputs.total_rps * share * calls  # calls per second into the pool
    offer_mb = offer_memory_mb(offer)
    out = []
    ca2 = merged_arrival_scv(inputs.arrival_scv, inputs.sites * share)
    for batch, rows in by_batch.items():
        fill = batch_fill_ms(batch, arrival, inputs.percentile, ca2=ca2)

        def load(row: dict, batch: int = batch) -> float:  # offered load in replicas
            return arrival * float(row[pt.LATENCY_MS_P50]) / 1000.0 / batch

        def fewest(row: dict) -> int:
            return max(1, math.ceil(load(row) / inputs.utilisation_cap - 1e-9))

        fitting = [r for r in rows if float(r[pt.MEMORY_MB]) <= offer_mb]
        for row in (runtime_front(fitting, replicas=fewest) if inputs.prune else fitting):
            r_min = fewest(row)
            service_ms = float(row[pt.LATENCY_MS_P50])
            for replicas in range(r_min, r_min + inputs.max_extra_replicas + 1):
                util = load(row) / replicas
                if util >= 1.0:
                    continue
                scv = service_scv(service_ms, float(row[pt.LATENCY_MS_P95]))
                mean = service_mean_ms(service_ms, float(row[pt.LATENCY_MS_P95]))
                queue = ggc_wait_ms_at_percentile(replicas, arrival / batch, mean, inputs.percentile,
                                                  cs2=scv, ca2=ca2 / batch)
                out.append(Option(
                    id=f"{offer[ot.OFFER]}/{row[pt.RUNTIME]}/b{batch}/r{replicas}",
                    location=cloud_location(offer), replicas=replicas,
                    compute_ms_p95=float(row[pt.LATENCY_MS_P95]) * calls, wait_ms=fill + queue,
                    batch_fill_ms=fill, utilisation=util, arrival_rps=arrival / batch,
                    service_ms=mean, service_scv=scv,
                    wait_model=f"G/G/{replicas} (Allen-Cunneen)" + (f", batch {batch} fill" if batch > 1 else ""),
                    monthly_usd=replicas * hourly * HOURS_PER_MONTH, hourly_usd=hourly,
                    hourly_usd_by_model=by_model, **common_fields(inputs, piece, offer, row),
                ))
    return out


def prune_dominated_options(options: list[Option]) -> list[Option]:
    """Drop options another option of the same piece beats on every count, exactly.

    A cloud option touches the rest of the model only through its location (transfers, egress),
    its latency and its cost; an edge option through its device (shared utilisation, memory,
    whether the device is bought), its latency. So within one location (cloud) or one device
    (edge), an option no better in any of those numbers than another can be swapped for it in any
    plan without breaking a constraint or raising the cost: removing it never removes an optimum.
    Ties keep the first (by id) so the result is deterministic.
    """
    def key(o: Option):
        return (o.latency_ms, o.monthly_usd, o.device_utilisation, o.device_memory_mb)

    groups: dict[tuple, list[Option]] = {}
    for o in options:
        groups.setdefault((o.location, o.entry, o.device_offer), []).append(o)
    kept: list[Option] = []
    for group in groups.values():
        group.sort(key=lambda o: (key(o), o.id))
        front: list[Option] = []
        for o in group:
            if not any(all(a <= b for a, b in zip(key(f), key(o))) for f in front):
                front.append(o)
        kept.extend(front)
    order = {o.id: i for i, o in enumerate(options)}
    return sorted(kept, key=lambda o: order[o.id])
