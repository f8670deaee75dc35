"""Options of one piece: every (offer, runtime, batch, replicas) it can run as, with the
non-linear parts (queueing, batch fill, replica counts) settled per option."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from placement.problem.offers import HOURS_PER_MONTH, EdgeDevice, price
from placement.problem.records import Option
from placement.problem.runtimes import RuntimeIndex, runtime_front
from placement.queueing import batch_fill_ms, wait_ms_at_percentile
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


def _common(inputs: OptionInputs, piece: str, offer: dict, row: dict) -> dict:
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
        out.append(Option(
            id=f"{offer[ot.OFFER]}/{row[pt.RUNTIME]}/b1/r1", location=location, replicas=1,
            compute_ms_p95=float(row[pt.LATENCY_MS_P95]) * calls,
            wait_ms=wait_ms_at_percentile(1, arrival, service_ms, inputs.percentile),
            utilisation=util, monthly_usd=0.0, hourly_usd=0.0, hourly_usd_by_model={},
            **_common(inputs, piece, offer, row),
        ))
    return out


def _cloud_options(inputs: OptionInputs, piece: str, calls: float, offer: dict, by_batch: dict,
                   share: float) -> list[Option]:
    """A pool of one instance type per (runtime, batch, replica count): integer replicas from the
    fewest that keep utilisation under the cap, up to `max_extra_replicas` more."""
    hourly = price(offer, inputs.pricing_column)
    by_model = {m: price(offer, c) for m, c in ot.PRICING_MODELS.items()}
    arrival = inputs.total_rps * share * calls  # calls per second into the pool
    offer_mb = float(offer[ot.MEMORY_GIB]) * 1024.0
    out = []
    for batch, rows in by_batch.items():
        fill = batch_fill_ms(batch, arrival, inputs.percentile)

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
                queue = wait_ms_at_percentile(replicas, arrival / batch, service_ms, inputs.percentile)
                out.append(Option(
                    id=f"{offer[ot.OFFER]}/{row[pt.RUNTIME]}/b{batch}/r{replicas}",
                    location=f"{offer[ot.PROVIDER]}:{offer[ot.REGION]}", replicas=replicas,
                    compute_ms_p95=float(row[pt.LATENCY_MS_P95]) * calls, wait_ms=fill + queue,
                    batch_fill_ms=fill, utilisation=util,
                    monthly_usd=replicas * hourly * HOURS_PER_MONTH, hourly_usd=hourly,
                    hourly_usd_by_model=by_model, **_common(inputs, piece, offer, row),
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
