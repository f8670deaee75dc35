"""Turn spec + ProfileTable + OfferTable into an immutable placement `Problem`.

Everything non-linear (queueing, replica counts, which runtimes are worth running) is settled
here, per option, so that the CP-SAT model stays linear over booleans and the checker in
`placement.evaluate` can recompute every number from the same option records.
"""

from __future__ import annotations

import pandas as pd

from placement.problem.colocate import colocated_options
from placement.problem.core import Problem
from placement.problem.fleet import fleet_options
from placement.problem.network import Flow, flows_with_bytes
from placement.problem.offers import (
    SECONDS_PER_MONTH,
    EdgeDevice,
    candidate_offers,
    edge_device,
    oldest_price_date,
    why_no_option,
    with_busy_power,
)
from placement.problem.options import (
    OptionInputs,
    bound_shared_device_waits,
    piece_options,
    prune_dominated_options,
)
from placement.problem.runtimes import RuntimeIndex, planning_latencies
from placement.problem.segments import Lane, fleet_lanes
from placement.problem.split import split_options
from placement.queueing import arrival_scv
from placement.spec import SINK, SOURCE, ApplicationSpec, topological_order
from pricing import table as ot


def _served_runtimes(profiles: pd.DataFrame) -> dict:
    """(piece, hardware) -> runtimes with a measured-served row."""
    from profiles.table import HARDWARE, MEASURED_SERVED, PIECE, RUNTIME, SOURCE

    served = profiles[profiles[SOURCE] == MEASURED_SERVED] if len(profiles) else profiles
    out: dict = {}
    for r in served[[PIECE, HARDWARE, RUNTIME]].itertuples(index=False):
        out.setdefault((r[0], r[1]), set()).add(r[2])
    return {k: tuple(sorted(v)) for k, v in out.items()}


def build_problem(
    spec: ApplicationSpec,
    profiles: pd.DataFrame,
    offers: pd.DataFrame,
    io_bytes: dict,
    *,
    egress_tiers: dict | None = None,
    egress_source: dict | None = None,
    inter_region: dict | None = None,
    prune: bool = True,
) -> Problem:
    """All options for every piece. A piece that cannot run anywhere is listed in
    `Problem.unplaceable` with the reason. `prune=False` keeps every runtime and option (a
    what-if may name one the optimiser would never pick); pruning never removes an optimum."""
    if egress_tiers is None or egress_source is None:
        egress_tiers, egress_source = _list_egress(spec)
    cands = candidate_offers(spec, offers)
    if inter_region is None:
        inter_region = _list_inter_region(cands)
    runtimes = RuntimeIndex.of(planning_latencies(profiles, spec.solver.estimated_latency))
    lanes = fleet_lanes(spec)
    devices = _devices(spec, cands, lanes)
    inputs = OptionInputs(
        offers=tuple(cands.to_dict("records")), runtimes=runtimes, devices=devices,
        tvm_targets=_tvm_targets(), site_rps=spec.load.rate_per_site_rps,
        total_rps=spec.load.rate_per_site_rps * spec.load.sites, percentile=spec.slo.percentile,
        utilisation_cap=spec.solver.utilisation_cap,
        max_extra_replicas=spec.solver.max_extra_replicas,
        pricing_column=ot.PRICING_MODELS[spec.hardware.pricing_model], prune=prune,
        arrival_scv=arrival_scv(spec.load.arrival, spec.load.burstiness), sites=spec.load.sites,
    )

    notes: list[str] = []
    if spec.solver.estimated_latency == "upper-band":
        notes.append("estimated latencies are planned at the top of their error band "
                     "(solver.estimated_latency: upper-band); measured ones as measured")
    options: dict[str, tuple] = {}
    unplaceable: dict[str, str] = {}
    piece_lane: dict[str, str] = {}
    piece_model: dict[str, str] = {}
    unpriced_offers: set[str] = set()  # candidates without a price at the pricing model
    for model in topological_order(spec):
        model_spec = spec.model(model)
        calls = model_spec.calls_per_request
        if spec.fleet:
            by_lane, unpriced = fleet_options(inputs, spec.network, lanes, model, calls,
                                              model_spec.split, io_bytes)
        else:
            found, unpriced = piece_options(inputs, model, calls)
            found += split_options(inputs, spec.network, model, calls, model_spec.split, io_bytes)
            by_lane = {"": prune_dominated_options(found) if prune else found}
        unpriced_offers.update(unpriced)
        for segment, found in by_lane.items():
            piece = f"{segment}/{model}" if segment else model
            piece_lane[piece], piece_model[piece] = segment, model
            if not found:
                unplaceable[piece] = why_no_option(model, cands, runtimes)
            options[piece] = tuple(found)
    if unpriced_offers:  # named, never dropped without a word (the report lists them too)
        notes.append(f"{len(unpriced_offers)} candidate offer(s) have no {spec.hardware.pricing_model} price "
                     f"and were left out: {', '.join(sorted(unpriced_offers))}")

    if spec.solver.colocate and not spec.fleet:
        # several whole models may share one cloud pool, sized for their loads together
        calls = {m: spec.model(m).calls_per_request for m in topological_order(spec) if m not in unplaceable}
        inputs_of = {m: frozenset(e.source for e in spec.dataflow if e.target == m) for m in calls}
        options = colocated_options(inputs, calls, inputs_of, options, max_pieces=spec.solver.colocate_max_pieces,
                                    max_pools=spec.solver.colocate_max_pools)
    # pieces on one site device share it: each edge option's wait bounded over who may share
    options = {p: tuple(o) for p, o in bound_shared_device_waits(
        options, percentile=spec.slo.percentile, arrival_scv=inputs.arrival_scv,
        cap=spec.solver.utilisation_cap).items()}
    # ...and draw power above idle in proportion to how busy they keep it (spec edge.power)
    options = with_busy_power(options, devices)
    pieces, flows = _per_lane(spec, lanes, flows_with_bytes(spec, io_bytes))
    return Problem(
        name=spec.name, pieces=pieces, flows=flows, options={p: options[p] for p in pieces},
        devices=devices, sites=spec.load.sites,
        requests_per_month=inputs.total_rps * SECONDS_PER_MONTH,
        slo_ms=spec.slo.latency_ms, slo_percentile=spec.slo.percentile,
        budget_usd=spec.monthly_budget_usd, utilisation_cap=spec.solver.utilisation_cap,
        pricing_model=spec.hardware.pricing_model, network=spec.network,
        egress_tiers=egress_tiers, egress_source=egress_source,
        price_date=oldest_price_date(cands), spec_digest=spec.digest(),
        unplaceable=unplaceable, notes=tuple(notes),
        max_price_age_days=spec.hardware.max_price_age_days,
        lanes=tuple(lanes), piece_lane=piece_lane, piece_model=piece_model,
        served_runtimes=_served_runtimes(profiles),
        min_site_share=spec.slo.min_site_share, arrival_scv=inputs.arrival_scv,
        inter_region=_by_location(inter_region),
        inter_region_source=_inter_region_sources(egress_tiers),
    )


def _list_egress(spec: ApplicationSpec) -> tuple[dict, dict]:
    """The providers' list egress tiers (the embedded snapshot)."""
    from pricing import egress

    providers = {c.provider for c in spec.hardware.cloud}
    return ({p: tuple(egress.egress_tiers(p)) for p in providers},
            {p: egress.egress_source(p) for p in providers})


def _cloud_regions(cands: pd.DataFrame) -> list[tuple[str, str]]:
    cloud = cands[cands[ot.TIER] == "cloud"]
    return sorted({(str(p), str(r)) for p, r in zip(cloud[ot.PROVIDER], cloud[ot.REGION])})


def _list_inter_region(cands: pd.DataFrame) -> dict:
    """(provider, from region, to region) -> the published USD/GB between two regions of one
    provider, for the candidate regions (the embedded snapshot); pairs with none are left out."""
    from pricing import egress

    regions = _cloud_regions(cands)
    rates = {}
    for provider, a in regions:
        for other, b in regions:
            if other == provider and a != b and provider in egress.providers():
                rate = egress.inter_region_usd_per_gb(provider, a, b)
                if rate is not None:
                    rates[provider, a, b] = rate
    return rates


def _by_location(inter_region: dict) -> dict:
    """(provider, region, region) rates keyed by locations (`provider:region`) as options are."""
    return {(f"{p}:{a}", f"{p}:{b}"): float(rate) for (p, a, b), rate in inter_region.items()}


def _inter_region_sources(egress_tiers: dict) -> dict:
    from pricing import egress

    return {p: egress.inter_region_source(p) if p in egress.providers() else
            f"no published inter-region rate for {p}: billed at its internet tiers"
            for p in egress_tiers}


def _tvm_targets() -> dict:
    from profiles.hardware import hardware_catalog

    return {hw: cls.tvm_target for hw, cls in hardware_catalog().items()}


def _devices(spec: ApplicationSpec, cands: pd.DataFrame, lanes: list[Lane]) -> dict[str, EdgeDevice]:
    """Edge devices by key (`Lane.device_key`, also their location): a fleet segment's own
    device, or every allowed device model at all sites of a uniform fleet."""
    rows = {row[ot.OFFER]: row for row in cands[cands[ot.TIER] == "edge"].to_dict("records")}
    if spec.fleet:
        return {lane.device_key(lane.device): edge_device(spec, rows[lane.device], sites=lane.sites,
                                                          segment=lane.segment, owned=seg.owned,
                                                          owned_by=seg.owned_by)
                for lane, seg in zip(lanes, spec.fleet)}
    return {offer: edge_device(spec, row, sites=lanes[0].sites, segment=None, owned=False)
            for offer, row in rows.items()}


def _per_lane(spec: ApplicationSpec, lanes: list[Lane], flows: tuple[Flow, ...]):
    """Pieces (topological order) and flows; a mixed fleet has a copy of both per segment."""
    pieces = tuple(topological_order(spec))
    if not spec.fleet:
        return pieces, flows

    def renamed(node: str, segment: str) -> str:
        return node if node in (SOURCE, SINK) else f"{segment}/{node}"

    return (tuple(f"{lane.segment}/{m}" for lane in lanes for m in pieces),
            tuple(Flow(renamed(f.source, lane.segment), renamed(f.target, lane.segment),
                       f.bytes_per_request, lane.share) for lane in lanes for f in flows))
