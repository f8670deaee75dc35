"""Turn spec + ProfileTable + OfferTable into an immutable placement `Problem`.

Everything non-linear (queueing, replica counts, which runtime is fastest) is settled here,
per option, so that the CP-SAT model stays linear over booleans and the checker in
`placement.evaluate` can recompute every number from the same option records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import pandas as pd

from placement.queueing import batch_fill_ms, wait_ms_at_percentile
from placement.spec import SINK, SOURCE, ApplicationSpec, topological_order
from pricing import table as ot
from profiles import table as pt

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
SITE = "site"  # where requests start and answers return


@dataclass(frozen=True)
class Option:
    """One way to run a piece: an offer, a runtime, a batch size and a replica count."""

    id: str
    piece: str
    offer: str
    tier: str
    location: str
    provider: str
    region: str
    instance_type: str
    hardware: str
    runtime: str
    batch: int
    replicas: int  # cloud: replicas of the pool; edge: 1 device per site
    compute_ms_p95: float  # x calls_per_request, run one after another
    wait_ms: float  # batch fill + queueing, each at the SLO percentile
    utilisation: float  # cloud: per replica; edge: share of one site's device
    memory_mb: float
    monthly_usd: float  # cloud compute; edge devices are costed per device, not per piece
    hourly_usd: float
    hourly_usd_by_model: dict = field(hash=False, compare=False)
    latency_source: str = ""
    error_band: float | None = None
    price_source: str = ""
    price_date: str = ""
    tvm_target: dict | None = field(default=None, hash=False, compare=False)
    batch_fill_ms: float = 0.0
    runtime_alternatives: dict = field(default_factory=dict, hash=False, compare=False)
    # A split model (Neurosurgeon-style): the head runs on a site device, the cut tensor crosses
    # the uplink, the tail runs in this option's cloud pool. None for a whole model.
    cut: str | None = None
    cut_bytes: float = 0.0
    cut_transfer_ms: float = 0.0
    head: dict | None = field(default=None, hash=False, compare=False)
    # A mixed fleet: a cloud pool serves the sites of several segments. Every segment in
    # `pool_segments` runs this piece in the pool named `pool`, sized for their traffic together,
    # and the pool is paid once. None: a uniform fleet, where an option is its own pool.
    pool: str | None = None
    pool_segments: tuple[str, ...] = ()

    @property
    def latency_ms(self) -> float:
        return self.compute_ms_p95 + self.wait_ms + self.cut_transfer_ms

    @property
    def entry(self) -> str:
        """Where this piece's input must arrive: the head's device for a split model."""
        return self.head["offer"] if self.head else self.location

    @property
    def device_offer(self) -> str | None:
        """The site device this option occupies, if any (a key of `Problem.devices`)."""
        if self.tier == "edge":
            return self.location
        return self.head["location"] if self.head else None

    @property
    def device_utilisation(self) -> float:
        if self.tier == "edge":
            return self.utilisation
        return self.head["utilisation"] if self.head else 0.0

    @property
    def device_memory_mb(self) -> float:
        if self.tier == "edge":
            return self.memory_mb
        return self.head["memory_mb"] if self.head else 0.0


@dataclass(frozen=True)
class EdgeDevice:
    offer: str
    device: str
    memory_mb: float
    unit_usd: float
    power_w: float
    capex_monthly_usd_per_site: float
    power_monthly_usd_per_site: float
    price_source: str
    price_date: str
    sites: int  # sites that have one (a fleet segment's sites, or all sites)
    segment: str | None = None  # the fleet segment it is installed in
    owned: bool = False  # already installed: capex is sunk, only power is charged

    @property
    def monthly_usd_per_site(self) -> float:
        return self.capex_monthly_usd_per_site + self.power_monthly_usd_per_site

    @property
    def monthly_usd(self) -> float:
        return self.monthly_usd_per_site * self.sites

    @property
    def label(self) -> str:
        return f"{self.device} ({self.segment})" if self.segment else self.device


@dataclass(frozen=True)
class Flow:
    """A dataflow edge and the bytes it carries per request."""

    source: str
    target: str
    bytes_per_request: float
    share: float = 1.0  # share of all requests that take this edge (its fleet segment's share)


@dataclass(frozen=True)
class Lane:
    """A fleet segment: its sites run their own copy of the dataflow, with pieces named
    `<segment>/<model>`. A uniform fleet is one unnamed lane of all sites."""

    segment: str
    share: float
    sites: int
    device: str | None  # the edge offer installed there; None: any of hardware.edge

    def device_key(self, offer: str) -> str:
        """The key of `offer`'s devices at these sites in `Problem.devices` (and their location):
        two segments with the same device model still own two sets of devices."""
        return f"{offer}@{self.segment}" if self.segment else offer


@dataclass(frozen=True)
class Problem:
    name: str
    pieces: tuple[str, ...]  # topological order
    flows: tuple[Flow, ...]
    options: dict  # piece -> tuple[Option, ...]
    devices: dict  # edge offer -> EdgeDevice
    sites: int
    requests_per_month: float
    slo_ms: float
    slo_percentile: int
    budget_usd: float
    utilisation_cap: float
    pricing_model: str
    network: object  # NetworkSpec
    egress_tiers: dict  # provider -> tuple[(width_gb, usd_per_gb), ...]
    egress_source: dict  # provider -> str
    price_date: str
    spec_digest: str
    unplaceable: dict = field(default_factory=dict)  # piece -> why it has no options
    notes: tuple[str, ...] = ()
    max_price_age_days: int = 30
    lanes: tuple[Lane, ...] = ()
    piece_lane: dict = field(default_factory=dict)  # piece -> segment ("" in a uniform fleet)
    piece_model: dict = field(default_factory=dict)  # piece -> model name
    min_site_share: float = 1.0  # the SLO must hold on at least this share of sites

    @property
    def fleet(self) -> bool:
        """True when pieces are per fleet segment (`<segment>/<model>`)."""
        return any(lane.segment for lane in self.lanes)

    def lane_share(self, segment: str) -> float:
        return next(lane.share for lane in self.lanes if lane.segment == segment)

    def option(self, option_id: str) -> Option:
        for opts in self.options.values():
            for opt in opts:
                if opt.id == option_id:
                    return opt
        raise KeyError(option_id)

    def locations(self) -> list[str]:
        locs = {o.location for opts in self.options.values() for o in opts}
        return sorted(locs)

    def transfer_ms(self, flow: Flow, loc_from: str, loc_to: str) -> float:
        return transfer_ms(self.network, loc_from, loc_to, flow.bytes_per_request)

    def egress_gb(self, flow: Flow) -> float:
        return flow.bytes_per_request * flow.share * self.requests_per_month / 1e9


class ProblemError(ValueError):
    """Inputs that cannot form a placement problem (e.g. a piece with no usable option)."""


def is_edge(location: str) -> bool:
    return location == SITE or location.startswith("edge:")


def transfer_ms(network, loc_from: str, loc_to: str, nbytes: float) -> float:
    """Time for `nbytes` to cross from one location to another: serialisation + one-way delay."""
    if loc_from == loc_to and is_edge(loc_from):
        return 0.0
    if is_edge(loc_from) and is_edge(loc_to):
        if SITE in (loc_from, loc_to):  # the site's own sensor/app and a device at the site
            return 0.0
        return _link_ms(nbytes, network.lan_mbps, network.lan_rtt_ms)
    if is_edge(loc_from):  # site -> cloud
        region = loc_to.split(":", 1)[1]
        return _link_ms(nbytes, network.uplink_mbps, network.rtt_ms[region])
    if is_edge(loc_to):  # cloud -> site
        region = loc_from.split(":", 1)[1]
        return _link_ms(nbytes, network.downlink_mbps, network.rtt_ms[region])
    if loc_from == loc_to:
        return _link_ms(nbytes, network.intra_region_mbps, network.intra_region_rtt_ms)
    return _link_ms(nbytes, network.inter_region_mbps, network.inter_region_rtt_ms)


def _link_ms(nbytes: float, mbps: float, rtt_ms: float) -> float:
    return nbytes * 8.0 / (mbps * 1000.0) + rtt_ms / 2.0


def best_runtime_rows(profiles: pd.DataFrame) -> pd.DataFrame:
    """The fastest runtime (by p95) per (piece, hardware, batch); ties keep the first."""
    rows = profiles.sort_values([pt.PIECE, pt.HARDWARE, pt.BATCH, pt.LATENCY_MS_P95, pt.RUNTIME])
    return rows.drop_duplicates([pt.PIECE, pt.HARDWARE, pt.BATCH], keep="first")


def planning_latencies(profiles: pd.DataFrame, estimated_latency: str) -> pd.DataFrame:
    """The ProfileTable the planner uses: with "upper-band", every estimated row is taken at the
    top of its error band, so the plan holds even where the estimate is as wrong as its
    calibration residuals allow."""
    if estimated_latency == "nominal":
        return profiles
    out = profiles.copy()
    banded = (out[pt.SOURCE] == "estimated") & out[pt.ERROR_BAND].notna()
    factor = 1.0 + out.loc[banded, pt.ERROR_BAND].astype(float)
    for column in (pt.LATENCY_MS_P50, pt.LATENCY_MS_P95):
        out.loc[banded, column] = out.loc[banded, column].astype(float) * factor
    return out


def candidate_offers(spec: ApplicationSpec, offers: pd.DataFrame) -> pd.DataFrame:
    """The offers the spec allows: its edge devices and its cloud filters."""
    edge_ids = list(spec.hardware.edge) + [seg.device for seg in spec.fleet or []]
    parts = [offers[(offers[ot.TIER] == "edge") & offers[ot.INSTANCE_TYPE].isin(edge_ids)]]
    cloud = offers[offers[ot.TIER] == "cloud"]
    for cand in spec.hardware.cloud:
        sel = cloud[(cloud[ot.PROVIDER] == cand.provider) & cloud[ot.REGION].isin(cand.regions)]
        if cand.instance_types:
            sel = sel[sel[ot.INSTANCE_TYPE].isin(cand.instance_types)]
        if cand.gpu is not None:
            has_gpu = sel[ot.ACCELERATOR].fillna("").str.startswith("nvidia")
            sel = sel[has_gpu if cand.gpu else ~has_gpu]
        if cand.max_hourly_usd is not None:
            sel = sel[sel[ot.HOURLY_USD] <= cand.max_hourly_usd]
        parts.append(sel)
    return pd.concat(parts).drop_duplicates(ot.OFFER).reset_index(drop=True)


def flows_with_bytes(spec: ApplicationSpec, io_bytes: dict) -> tuple[Flow, ...]:
    """Bytes per request on each dataflow edge: what the target consumes, or what reaches the sink.

    `io_bytes[model] = (input_bytes, output_bytes)` for one call; a model called k times per
    request consumes k inputs and produces k outputs.
    """
    flows = []
    for edge in spec.dataflow:
        if edge.bytes is not None:
            nbytes = float(edge.bytes)
        elif edge.target != SINK:
            nbytes = io_bytes[edge.target][0] * spec.model(edge.target).calls_per_request
        else:
            nbytes = io_bytes[edge.source][1] * spec.model(edge.source).calls_per_request
        flows.append(Flow(edge.source, edge.target, nbytes))
    return tuple(flows)


def _price(row, column) -> float | None:
    value = row[column]
    return None if value is None or pd.isna(value) else float(value)


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


def build_problem(
    spec: ApplicationSpec,
    profiles: pd.DataFrame,
    offers: pd.DataFrame,
    io_bytes: dict,
    *,
    egress_tiers: dict | None = None,
    egress_source: dict | None = None,
    prune: bool = True,
) -> Problem:
    """All options for every piece; raises `ProblemError` naming a piece that cannot run anywhere."""
    if egress_tiers is None or egress_source is None:
        from pricing import egress

        providers = {c.provider for c in spec.hardware.cloud}
        egress_tiers = {p: tuple(egress.egress_tiers(p)) for p in providers}
        egress_source = {p: egress.egress_source(p) for p in providers}

    pricing_column = ot.PRICING_MODELS[spec.hardware.pricing_model]
    cands = candidate_offers(spec, offers)
    profiles = planning_latencies(profiles, spec.solver.estimated_latency)
    best = best_runtime_rows(profiles)
    cap = spec.solver.utilisation_cap
    percentile = spec.slo.percentile
    site_rps = spec.load.rate_per_site_rps
    total_rps = site_rps * spec.load.sites

    lanes = fleet_lanes(spec)
    edge_rows = {row[ot.OFFER]: row for row in cands[cands[ot.TIER] == "edge"].to_dict("records")}

    def edge_device(row: dict, lane: Lane, owned: bool) -> EdgeDevice:
        capex = 0.0 if owned else float(row[ot.UNIT_USD]) / spec.edge.amortisation_months
        power = float(row[ot.POWER_W]) / 1000.0 * HOURS_PER_MONTH * spec.edge.electricity_usd_per_kwh
        return EdgeDevice(
            offer=row[ot.OFFER], device=row[ot.INSTANCE_TYPE],
            memory_mb=float(row[ot.MEMORY_GIB]) * 1024.0, unit_usd=float(row[ot.UNIT_USD]),
            power_w=float(row[ot.POWER_W]), capex_monthly_usd_per_site=capex,
            power_monthly_usd_per_site=power, price_source=str(row[ot.PRICE_SOURCE]),
            price_date=str(row[ot.PRICE_DATE]), sites=lane.sites, segment=lane.segment or None,
            owned=owned,
        )

    # Device keys are the edge locations (`Lane.device_key`).
    devices: dict[str, EdgeDevice] = {}
    if spec.fleet:
        for lane, seg in zip(lanes, spec.fleet):
            devices[lane.device_key(lane.device)] = edge_device(edge_rows[lane.device], lane, seg.owned)
    else:
        for offer_id, row in edge_rows.items():
            devices[offer_id] = edge_device(row, lanes[0], False)

    options: dict[str, tuple[Option, ...]] = {}
    unplaceable: dict[str, str] = {}
    notes: list[str] = []
    if spec.solver.estimated_latency == "upper-band":
        notes.append("estimated latencies are planned at the top of their error band "
                     "(solver.estimated_latency: upper-band); measured ones as measured")
    from profiles.hardware import hardware_catalog

    catalog = hardware_catalog()
    offer_records = cands.to_dict("records")
    best_by_key: dict[tuple[str, str], dict[int, dict]] = {}
    for r in best.to_dict("records"):
        best_by_key.setdefault((r[pt.PIECE], r[pt.HARDWARE]), {})[int(r[pt.BATCH])] = r
    alternatives: dict[tuple[str, str], dict[str, float]] = {}
    for r in profiles[profiles[pt.BATCH] == 1].to_dict("records"):
        alternatives.setdefault((r[pt.PIECE], r[pt.HARDWARE]), {})[r[pt.RUNTIME]] = float(r[pt.LATENCY_MS_P95])
    def options_for(piece: str, calls: float, *, share: float = 1.0, lane: Lane | None = None,
                    tiers=("edge", "cloud")) -> tuple[list[Option], list[str]]:
        """Every (offer, runtime, batch, replicas) option of one profiled piece: cloud pools
        sized for `share` of all traffic, edge options on `lane`'s device (any, uniformly)."""
        piece_options: list[Option] = []
        skipped_price: list[str] = []
        for offer in offer_records:
            if offer[ot.TIER] not in tiers:
                continue
            if offer[ot.TIER] == "edge" and lane is not None and lane.device is not None \
                    and offer[ot.OFFER] != lane.device:
                continue
            hw = offer[ot.HARDWARE]
            by_batch = best_by_key.get((piece, hw))
            if not by_batch or 1 not in by_batch:
                continue
            prof = by_batch[1]
            compute_p95 = float(prof[pt.LATENCY_MS_P95]) * calls
            service_ms = float(prof[pt.LATENCY_MS_P50])
            memory_mb = float(prof[pt.MEMORY_MB])
            band = prof[pt.ERROR_BAND]
            common = dict(
                piece=piece, offer=offer[ot.OFFER], tier=offer[ot.TIER],
                provider=offer[ot.PROVIDER], region=offer[ot.REGION],
                instance_type=offer[ot.INSTANCE_TYPE], hardware=hw, runtime=prof[pt.RUNTIME],
                batch=1, memory_mb=memory_mb, latency_source=str(prof[pt.SOURCE]),
                error_band=None if pd.isna(band) else float(band),
                price_source=str(offer[ot.PRICE_SOURCE]), price_date=str(offer[ot.PRICE_DATE]),
                tvm_target=catalog[hw].tvm_target if hw in catalog else None,
                runtime_alternatives=alternatives.get((piece, hw), {}),
            )
            if offer[ot.TIER] == "edge":
                key = lane.device_key(offer[ot.OFFER]) if lane else offer[ot.OFFER]
                device = devices[key]
                if memory_mb > device.memory_mb:
                    continue
                util = site_rps * calls * service_ms / 1000.0
                if util > cap:
                    continue
                wait = wait_ms_at_percentile(1, site_rps * calls, service_ms, percentile)
                piece_options.append(Option(
                    id=f"{offer[ot.OFFER]}/{prof[pt.RUNTIME]}/b1/r1", location=key,
                    replicas=1, compute_ms_p95=compute_p95, wait_ms=wait, utilisation=util,
                    monthly_usd=0.0, hourly_usd=0.0, hourly_usd_by_model={}, **common,
                ))
                continue
            hourly = _price(offer, pricing_column)
            if hourly is None:
                skipped_price.append(str(offer[ot.OFFER]))
                continue
            by_model = {m: _price(offer, c) for m, c in ot.PRICING_MODELS.items()}
            arrival = total_rps * share * calls  # calls per second into the pool
            for batch, row in sorted(by_batch.items()):
                if memory_mb_of(row) > float(offer[ot.MEMORY_GIB]) * 1024.0:
                    continue
                batch_service_ms = float(row[pt.LATENCY_MS_P50])
                fill = batch_fill_ms(batch, arrival, percentile)
                load = arrival * batch_service_ms / 1000.0 / batch  # offered load in replicas
                r_min = max(1, math.ceil(load / cap - 1e-9))
                batch_common = dict(common, batch=batch, runtime=row[pt.RUNTIME],
                                    memory_mb=memory_mb_of(row),
                                    latency_source=str(row[pt.SOURCE]),
                                    error_band=None if pd.isna(row[pt.ERROR_BAND]) else float(row[pt.ERROR_BAND]))
                for replicas in range(r_min, r_min + spec.solver.max_extra_replicas + 1):
                    util = load / replicas
                    if util >= 1.0:
                        continue
                    queue = wait_ms_at_percentile(replicas, arrival / batch, batch_service_ms, percentile)
                    piece_options.append(Option(
                        id=f"{offer[ot.OFFER]}/{row[pt.RUNTIME]}/b{batch}/r{replicas}",
                        location=f"{offer[ot.PROVIDER]}:{offer[ot.REGION]}", replicas=replicas,
                        compute_ms_p95=float(row[pt.LATENCY_MS_P95]) * calls, wait_ms=fill + queue,
                        batch_fill_ms=fill, utilisation=util,
                        monthly_usd=replicas * hourly * HOURS_PER_MONTH, hourly_usd=hourly,
                        hourly_usd_by_model=by_model, **batch_common,
                    ))
        return piece_options, skipped_price

    def composite(piece: str, tensor: str, h: Option, t: Option, cut_bytes: float) -> Option:
        """Head on a site device, cut tensor over the uplink, tail in a cloud pool."""
        return dataclasses.replace(
            t, id=f"split@{tensor}:{h.offer}+{t.id}", piece=piece, cut=tensor, cut_bytes=cut_bytes,
            cut_transfer_ms=transfer_ms(spec.network, h.location, t.location, cut_bytes),
            compute_ms_p95=h.compute_ms_p95 + t.compute_ms_p95,
            wait_ms=h.wait_ms + t.wait_ms,
            latency_source=_weaker_source(h.latency_source, t.latency_source),
            error_band=max(h.error_band or 0.0, t.error_band or 0.0) or None,
            head={"offer": h.offer, "location": h.location, "device": h.instance_type,
                  "hardware": h.hardware, "runtime": h.runtime, "latency_ms": h.latency_ms,
                  "utilisation": h.utilisation, "memory_mb": h.memory_mb,
                  "latency_source": h.latency_source, "piece": h.piece, "tail_piece": t.piece},
        )

    def split_options(piece: str, calls: float, split) -> list[Option]:
        """Every (cut, head device, tail pool) of a model in a uniform fleet (one cut)."""
        if split == "none":
            return []
        out: list[Option] = []
        for tensor, head, tail in _cuts(piece, split, best_by_key, io_bytes):
            cut_bytes = float(io_bytes[head][1]) * calls
            heads = options_for(head, calls, tiers=("edge",))[0]
            tails = options_for(tail, calls, tiers=("cloud",))[0]
            out += [composite(piece, tensor, h, t, cut_bytes) for h in heads for t in tails]
        return out

    def pooled(option: Option, lane: Lane, model: str, segments: tuple[str, ...]) -> Option:
        tag = "+".join(segments)
        return dataclasses.replace(option, piece=f"{lane.segment}/{model}", id=f"{option.id}@{tag}",
                                   pool=f"{model}:{option.id}@{tag}", pool_segments=segments)

    def fleet_options(model: str, calls: float, split) -> tuple[dict, list[str]]:
        """Options of one model in every segment: its own device, or a cloud pool shared with
        any subset of the other segments (sized for their traffic together), or split."""
        by_lane: dict[str, list[Option]] = {lane.segment: [] for lane in lanes}
        skipped: list[str] = []
        for lane in lanes:
            edge = options_for(model, calls, lane=lane, tiers=("edge",))[0]
            by_lane[lane.segment] += [dataclasses.replace(o, piece=f"{lane.segment}/{model}") for o in edge]
        cuts = [] if split == "none" else list(_cuts(model, split, best_by_key, io_bytes))
        # The head of a cut on each segment's own device (the fastest runtime), once per cut.
        heads: dict[tuple[str, str], Option] = {}
        for tensor, head, _ in cuts:
            for lane in lanes:
                found = options_for(head, calls, lane=lane, tiers=("edge",))[0]
                if found:
                    heads[tensor, lane.segment] = min(found, key=lambda o: (o.latency_ms, o.id))
        for subset in segment_subsets(lanes):
            names = tuple(lane.segment for lane in subset)
            share = sum(lane.share for lane in subset)
            cloud, skipped = options_for(model, calls, share=share, tiers=("cloud",))
            # Pruned per pool (same subset): exact, a pool's numbers are the same in each segment.
            for o in (prune_dominated_options(cloud) if prune else cloud):
                for lane in subset:
                    by_lane[lane.segment].append(pooled(o, lane, model, names))
            for tensor, head, tail in cuts:
                if any((tensor, name) not in heads for name in names):
                    continue  # a segment whose device cannot run the head
                cut_bytes = float(io_bytes[head][1]) * calls
                tails = options_for(tail, calls, share=share, tiers=("cloud",))[0]
                for t in (prune_dominated_options(tails) if prune else tails):
                    for lane in subset:
                        h = heads[tensor, lane.segment]
                        by_lane[lane.segment].append(
                            pooled(composite(model, tensor, h, t, cut_bytes), lane, model, names))
        return by_lane, skipped

    piece_lane: dict[str, str] = {}
    piece_model: dict[str, str] = {}
    for model in topological_order(spec):
        model_spec = spec.model(model)
        calls = model_spec.calls_per_request
        if spec.fleet:
            by_lane, skipped_price = fleet_options(model, calls, model_spec.split)
        else:
            piece_options, skipped_price = options_for(model, calls)
            piece_options += split_options(model, calls, model_spec.split)
            if prune:
                piece_options = prune_dominated_options(piece_options)
            by_lane = {"": piece_options}
        if skipped_price:
            notes.append(
                f"{model}: {len(skipped_price)} offer(s) have no {spec.hardware.pricing_model} "
                f"price and were left out"
            )
        for segment, piece_options in by_lane.items():
            piece = f"{segment}/{model}" if segment else model
            piece_lane[piece], piece_model[piece] = segment, model
            if not piece_options:
                unplaceable[piece] = _why_no_option(model, cands, {h for (p, h) in best_by_key if p == model})
            options[piece] = tuple(piece_options)

    io = {k: tuple(v) for k, v in io_bytes.items()}
    flows = flows_with_bytes(spec, io)
    pieces = tuple(topological_order(spec))
    if spec.fleet:
        def renamed(node: str, segment: str) -> str:
            return node if node in (SOURCE, SINK) else f"{segment}/{node}"

        pieces = tuple(f"{lane.segment}/{m}" for lane in lanes for m in pieces)
        flows = tuple(Flow(renamed(f.source, lane.segment), renamed(f.target, lane.segment),
                           f.bytes_per_request, lane.share) for lane in lanes for f in flows)
        options = {p: options[p] for p in pieces}
    return Problem(
        name=spec.name, pieces=pieces,
        flows=flows, options=options, devices=devices,
        sites=spec.load.sites, requests_per_month=total_rps * SECONDS_PER_MONTH,
        slo_ms=spec.slo.latency_ms, slo_percentile=spec.slo.percentile,
        budget_usd=spec.monthly_budget_usd, utilisation_cap=cap,
        pricing_model=spec.hardware.pricing_model, network=spec.network,
        egress_tiers=egress_tiers, egress_source=egress_source,
        price_date=_price_date(cands), spec_digest=spec.digest(),
        unplaceable=unplaceable, notes=tuple(notes),
        max_price_age_days=spec.hardware.max_price_age_days,
        lanes=tuple(lanes), piece_lane=piece_lane, piece_model=piece_model,
        min_site_share=spec.slo.min_site_share,
    )


def fleet_lanes(spec: ApplicationSpec) -> list[Lane]:
    if not spec.fleet:
        return [Lane("", 1.0, spec.load.sites, None)]
    return [Lane(seg.name, seg.share, int(round(seg.share * spec.load.sites)), f"edge:{seg.device}")
            for seg in spec.fleet]


def segment_subsets(lanes):
    """Every non-empty set of segments, in a fixed order (lanes keep their spec order)."""
    from itertools import combinations

    for k in range(1, len(lanes) + 1):
        yield from combinations(lanes, k)


def _cuts(piece: str, split, best_by_key: dict, io_bytes: dict):
    """(tensor, head piece, tail piece) for each profiled cut of a model the spec lets split."""
    profiled = {p for p, _ in best_by_key}
    wanted = None if split == "auto" else set(split)
    for head in sorted(p for p in profiled if p.startswith(f"{piece}@") and p.endswith(":head")):
        tensor = head[len(piece) + 1:-len(":head")]
        tail = f"{piece}@{tensor}:tail"
        if tail in profiled and head in io_bytes and (wanted is None or tensor in wanted):
            yield tensor, head, tail


_SOURCE_RANK = ["estimated", "imported", "measured-rpc", "measured-local"]


def _weaker_source(a: str, b: str) -> str:
    """A split option's latency is only as trustworthy as its less trustworthy half."""
    rank = {s: i for i, s in enumerate(_SOURCE_RANK)}
    return min((a, b), key=lambda s: rank.get(s, -1))


def memory_mb_of(row: dict) -> float:
    return float(row[pt.MEMORY_MB])


def _price_date(cands: pd.DataFrame) -> str:
    dates = sorted({str(d) for d in cands[ot.PRICE_DATE].dropna()})
    return dates[0] if dates else "unknown"


def _why_no_option(piece: str, cands: pd.DataFrame, profiled: set) -> str:
    if cands.empty:
        return "no candidate offers match the spec's hardware filters"
    if not profiled & set(cands[ot.HARDWARE]):
        return (f"no profile for {piece!r} on any candidate hardware "
                f"({', '.join(sorted(set(cands[ot.HARDWARE])))})")
    return "every candidate is too small (memory) or too slow for the load (utilisation cap)"


__all__ = [
    "Option", "EdgeDevice", "Flow", "Lane", "Problem", "ProblemError", "build_problem", "transfer_ms",
    "is_edge", "SITE", "SOURCE", "SINK", "HOURS_PER_MONTH",
]
