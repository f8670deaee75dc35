"""What-if evaluation and the independent checker: cost, latency and broken constraints of an
assignment, recomputed from the option records without touching the CP-SAT model.

The solver's optimum is only trusted because tests compare it with exhaustive enumeration
over this function; every plan the tool writes is re-evaluated here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from placement.pool_check import check_colocated_pools
from placement.problem import HOURS_PER_MONTH, SINK, SITE, SOURCE, Option, Problem, is_edge
from placement.queueing import Stream, shared_wait_ms_at_percentile
from pricing.egress import tiered_cost_usd
from profiles.errors import UserError


@dataclass(frozen=True)
class CostItem:
    kind: str  # compute | edge-capex | edge-power | egress
    item: str
    quantity: float
    unit: str
    unit_usd: float
    monthly_usd: float
    source: str


@dataclass(frozen=True)
class Transfer:
    source: str
    target: str
    bytes_per_request: float
    location_from: str
    location_to: str
    transfer_ms: float

    @property
    def crosses(self) -> bool:
        return self.transfer_ms > 0.0


@dataclass
class Evaluation:
    assignment: dict  # piece -> Option
    starts_ms: dict
    finishes_ms: dict
    latency_ms: float
    critical_path: list
    transfers: list
    cost_items: list
    monthly_usd: float
    device_load: dict  # edge offer -> (utilisation, memory_mb)
    violations: list = field(default_factory=list)
    cost_by_pricing_model: dict = field(default_factory=dict)
    segment_latency_ms: dict = field(default_factory=dict)  # fleet segment -> its answers' latency
    site_share_meeting_slo: float = 1.0
    # piece on a site device -> its exact queueing wait with the pieces that do share the device
    # (the option's wait is a bound over those that may; the SLO is checked on the bound)
    shared_wait_ms: dict = field(default_factory=dict)
    # piece in a co-located cloud pool -> its wait recomputed over the pool's merged load
    pool_wait_ms: dict = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return not self.violations


class AssignmentError(UserError):
    """An assignment that names an unknown piece or option."""


def location_of(node: str, assignment: dict, *, entry: bool = False) -> str:
    """Where a node's output leaves from, or (entry=True) where its input must arrive."""
    if node in (SOURCE, SINK):
        return SITE
    return assignment[node].entry if entry else assignment[node].location


def egress_gb_by_provider(problem: Problem, assignment: dict) -> dict:
    """GB per month leaving each provider's cloud over the internet: to the sites, to another
    provider, to another of its regions with no published rate."""
    volume: dict[str, float] = {}
    for (provider, rate, _), gb in billed_links(problem, assignment).items():
        if rate is None:
            volume[provider] = volume.get(provider, 0.0) + gb
    return volume


def billed_links(problem: Problem, assignment: dict) -> dict:
    """(sending provider, flat USD/GB or None for its internet tiers, link name) -> GB per
    month, for every dataflow edge whose bytes leave a cloud region. Recomputed here from the
    locations and `problem.inter_region`, not from the solver's classification."""
    links: dict[tuple, float] = {}
    for flow in problem.flows:
        loc_from = location_of(flow.source, assignment)
        loc_to = location_of(flow.target, assignment, entry=True)
        if is_edge(loc_from) or loc_from == loc_to:
            continue  # ingress and traffic within a region are free
        provider, region = loc_from.split(":", 1)
        if is_edge(loc_to):
            key = (provider, None, f"{provider} internet egress")
        elif loc_to.split(":", 1)[0] != provider:
            key = (provider, None, f"{provider} internet egress {region} -> {loc_to}")
        elif (loc_from, loc_to) in problem.inter_region:
            key = (provider, problem.inter_region[loc_from, loc_to],
                   f"{provider} inter-region {region} -> {loc_to.split(':', 1)[1]}")
        else:  # two regions of one provider with no published rate: its internet tiers
            key = (provider, None, f"{provider} internet egress {region} -> {loc_to}")
        links[key] = links.get(key, 0.0) + problem.egress_gb(flow)
    return links


def power_detail(dev, utilisation: float) -> str:
    """How a device's power line was reckoned, in words a finance team can check."""
    if dev.owned_by == "users":
        return "owned by its users: not charged"
    if dev.busy_power_monthly_usd_per_site:
        return (f"{dev.idle_power_w:g} W idle + {dev.power_w - dev.idle_power_w:g} W x {utilisation:.1%} busy "
                f"= {dev.idle_power_w + (dev.power_w - dev.idle_power_w) * utilisation:.2f} W average")
    if dev.power_policy == "by-use":
        return f"{dev.power_w:g} W around the clock (no published idle figure: charged busy)"
    return f"{dev.power_w:g} W around the clock (edge.power: full-load)"


def evaluate(problem: Problem, assignment: dict) -> Evaluation:
    """Cost, end-to-end latency and violated constraints of `assignment` (piece -> Option or id)."""
    chosen: dict[str, Option] = {}
    for piece in problem.pieces:
        if piece not in assignment:
            raise AssignmentError(f"no placement given for piece {piece!r}")
        opt = assignment[piece]
        if isinstance(opt, str):
            matches = [o for o in problem.options[piece] if o.id == opt]
            if not matches:
                raise AssignmentError(f"{piece}: no option {opt!r}")
            opt = matches[0]
        chosen[piece] = opt
    for piece in assignment:
        if piece not in problem.pieces:
            raise AssignmentError(f"unknown piece {piece!r}")

    # Latency: longest source -> sink path, pieces in topological order.
    starts: dict[str, float] = {}
    finishes: dict[str, float] = {SOURCE: 0.0}
    pred_of: dict[str, str] = {}
    transfers: list[Transfer] = []
    incoming: dict[str, list] = {}
    for flow in problem.flows:
        loc_from = location_of(flow.source, chosen)
        loc_to = location_of(flow.target, chosen, entry=True)
        t = Transfer(flow.source, flow.target, flow.bytes_per_request, loc_from, loc_to,
                     problem.transfer_ms(flow, loc_from, loc_to))
        transfers.append(t)
        incoming.setdefault(flow.target, []).append(t)
    for node in (*problem.pieces, SINK):
        best, via = 0.0, SOURCE
        for t in incoming.get(node, []):
            arrival = finishes[t.source] + t.transfer_ms
            if arrival > best or (arrival == best and via == SOURCE):
                best, via = arrival, t.source
        starts[node] = best
        pred_of[node] = via
        finishes[node] = best + (chosen[node].latency_ms if node != SINK else 0.0)
    # Each fleet segment's answers arrive on their own paths; the plan's latency is the one met
    # by the required share of sites (all of them unless the spec says otherwise).
    segment_arrival: dict[str, tuple[float, str]] = {}
    for t in incoming.get(SINK, []):
        if t.source == SOURCE:
            continue
        segment = problem.piece_lane.get(t.source, "")
        arrival = finishes[t.source] + t.transfer_ms
        if segment not in segment_arrival or arrival > segment_arrival[segment][0]:
            segment_arrival[segment] = (arrival, t.source)
    shares = {lane.segment: lane.share for lane in problem.lanes} or {"": 1.0}
    latency, covered = finishes[SINK], 0.0
    for segment, (arrival, _) in sorted(segment_arrival.items(), key=lambda kv: kv[1][0]):
        covered += shares.get(segment, 1.0)
        if covered >= problem.min_site_share - 1e-9:
            latency = arrival
            break
    met = sum(shares.get(seg, 1.0) for seg, (arrival, _) in segment_arrival.items()
              if arrival <= problem.slo_ms + 1e-9)
    node = next((last for arrival, last in segment_arrival.values() if arrival == latency), pred_of[SINK])
    path = [SINK, node]
    while node != SOURCE:
        node = pred_of[node]
        path.append(node)
    path.reverse()

    # Money: cloud pools, edge devices (one per site per device model used), egress.
    items: list[CostItem] = []
    billed: list[Option] = []  # cloud pools, each once (a pool shared by fleet segments too)
    shared_pools: set[str] = set()
    for piece, opt in chosen.items():
        if opt.tier != "cloud" or opt.pool in shared_pools:
            continue
        billed.append(opt)
        if opt.pool is not None:
            shared_pools.add(opt.pool)
        item = f"{piece} on {opt.offer}" if opt.pool is None else (
            f"{'+'.join(opt.pool_pieces)} on {opt.offer} (one pool)" if opt.pool_pieces else
            f"{problem.piece_model[piece]} on {opt.offer} for {'+'.join(opt.pool_segments)}")
        items.append(CostItem(
            "compute", item, opt.replicas, "replica", opt.hourly_usd * HOURS_PER_MONTH,
            opt.monthly_usd, f"{opt.price_source} ({opt.price_date}), {problem.pricing_model}",
        ))
    device_load: dict[str, tuple[float, float]] = {}
    for opt in chosen.values():
        if opt.device_offer is not None:
            util, mem = device_load.get(opt.device_offer, (0.0, 0.0))
            device_load[opt.device_offer] = (util + opt.device_utilisation, mem + opt.device_memory_mb)
    shared_wait = exact_device_waits(problem, chosen)
    for offer in sorted(device_load):
        dev = problem.devices[offer]
        items.append(CostItem(
            "edge-capex", dev.label, dev.sites, "device",
            dev.capex_monthly_usd_per_site, dev.capex_monthly_usd_per_site * dev.sites,
            "owned by its users: not charged" if dev.owned_by == "users" else
            "owned: already installed" if dev.owned else f"{dev.price_source} ({dev.price_date}), amortised",
        ))
        per_site = dev.power_monthly_usd_per_site + dev.busy_power_monthly_usd_per_site * device_load[offer][0]
        items.append(CostItem(
            "edge-power", dev.label, dev.sites, "device", per_site, per_site * dev.sites,
            power_detail(dev, device_load[offer][0]),
        ))
    # Transfer: each provider's internet volume is priced on its tiers as a whole, and each
    # link named with its GB share of that cost; inter-region links at their flat rate.
    links = billed_links(problem, chosen)
    internet = egress_gb_by_provider(problem, chosen)
    for (provider, rate, name), gb in sorted(links.items(), key=lambda kv: kv[0][2]):
        if rate is None:
            if provider not in problem.egress_tiers:
                continue  # no tiers given for this provider: not priced
            total = internet[provider]
            cost = tiered_cost_usd(problem.egress_tiers[provider], total) * (gb / total if total else 0.0)
            source = problem.egress_source[provider]
            if gb < total:
                source += f"; tiers applied to all {total:,.1f} GB leaving {provider} over the internet"
        else:
            cost = rate * gb
            source = problem.inter_region_source.get(provider, "inter-region rate given")
        items.append(CostItem("egress", name, gb, "GB", cost / gb if gb else 0.0, cost, source))
    monthly = sum(i.monthly_usd for i in items)

    violations: list[str] = []
    if latency > problem.slo_ms:
        share = "" if problem.min_site_share >= 1.0 else (
            f" on {problem.min_site_share:.0%} of sites (met on {met:.0%})")
        violations.append(
            f"SLO: p{problem.slo_percentile} latency {latency:.1f} ms > {problem.slo_ms:g} ms{share}"
        )
    for piece, opt in chosen.items():
        if opt.pool is None:
            continue
        model = problem.piece_model[piece]
        for segment in opt.pool_segments:
            other = chosen.get(f"{segment}/{model}")
            if other is None or other.pool != opt.pool:
                violations.append(f"pool: {model} on {opt.offer} is sized for segments "
                                  f"{'+'.join(opt.pool_segments)} but {segment} runs it elsewhere")
                break
    # co-located pieces: all in their pool, its load, memory and merged wait recomputed
    pool_violations, pool_wait = check_colocated_pools(problem, chosen)
    violations += pool_violations
    if monthly > problem.budget_usd:
        violations.append(f"budget: ${monthly:,.2f}/month > ${problem.budget_usd:,.2f}")
    for offer, (util, mem) in sorted(device_load.items()):
        dev = problem.devices[offer]
        if util > problem.utilisation_cap + 1e-9:
            violations.append(
                f"edge utilisation: {dev.label} at {util:.0%} > cap {problem.utilisation_cap:.0%}"
            )
        if mem > dev.memory_mb:
            violations.append(f"edge memory: {dev.label} needs {mem:.0f} MB > {dev.memory_mb:.0f} MB")
    for piece, opt in chosen.items():
        if opt.tier == "cloud" and opt.utilisation > problem.utilisation_cap + 1e-9:
            violations.append(
                f"cloud utilisation: {piece} on {opt.offer} at {opt.utilisation:.0%} "
                f"> cap {problem.utilisation_cap:.0%}"
            )
        if math.isinf(opt.wait_ms):
            violations.append(f"throughput: {piece} on {opt.offer} cannot keep up with the load")

    by_model: dict[str, float | None] = {}
    non_compute = sum(i.monthly_usd for i in items if i.kind != "compute")
    for model in ("on-demand", "spot", "reserved-1y", "reserved-3y"):
        total: float | None = non_compute
        for opt in billed:
            hourly = opt.hourly_usd_by_model.get(model)
            if hourly is None:
                total = None
                break
            total += opt.replicas * hourly * HOURS_PER_MONTH
        by_model[model] = total

    return Evaluation(
        assignment=chosen, starts_ms=starts, finishes_ms=finishes, latency_ms=latency,
        critical_path=path, transfers=transfers, cost_items=items, monthly_usd=monthly,
        device_load=device_load, violations=violations, cost_by_pricing_model=by_model,
        segment_latency_ms={seg: arrival for seg, (arrival, _) in segment_arrival.items() if seg},
        site_share_meeting_slo=met, shared_wait_ms=shared_wait, pool_wait_ms=pool_wait,
    )


def exact_device_waits(problem: Problem, chosen: dict) -> dict:
    """Each edge piece's wait at its device, the device one server shared by the pieces placed
    on it (their streams merged; split heads as busy share), at the SLO percentile."""
    by_device: dict[str, list] = {}
    heads: dict[str, float] = {}
    for piece, opt in chosen.items():
        if opt.tier == "edge" and opt.service_ms > 0:
            by_device.setdefault(opt.location, []).append(piece)
        elif opt.head is not None:
            heads[opt.head.location] = heads.get(opt.head.location, 0.0) + opt.head.utilisation
    out = {}
    for device, pieces in by_device.items():
        streams = [Stream(chosen[p].arrival_rps, chosen[p].service_ms, chosen[p].service_scv) for p in pieces]
        wait = shared_wait_ms_at_percentile(streams, problem.slo_percentile, ca2=problem.arrival_scv,
                                            extra_load=heads.get(device, 0.0))
        out.update({p: wait for p in pieces})
    return out


def resolve_assignment(problem: Problem, wanted: dict) -> dict:
    """Map user `piece=offer[/runtime][/rN]` strings to options: the fewest replicas that keep
    utilisation under the cap, then the fastest, among the options that match.

    In a mixed fleet a piece is `<segment>/<model>`; a bare model name places it the same way in
    every segment, and the offer `edge` names each segment's own device. Segments that name the
    same cloud offer for a model share one pool, sized for their traffic together.

    `offer/shared` (e.g. `offer/onnxruntime/b1/shared/r1`): the pieces that name one offer so run
    in one co-located pool of it (an option id's `pool[a+b]` names the pool's pieces); without
    either, a piece gets a pool of its own."""
    if problem.fleet:
        expanded: dict[str, str] = {}
        for piece, spec in wanted.items():
            if piece in problem.options:
                expanded[piece] = spec
                continue
            lanes = [p for p in problem.pieces if problem.piece_model[p] == piece]
            if not lanes:
                raise AssignmentError(
                    f"--assign: unknown piece {piece!r} (pieces: {', '.join(problem.pieces)})")
            for p in lanes:
                expanded.setdefault(p, spec)
        wanted = expanded
    out: dict[str, Option] = {}
    for piece, spec in wanted.items():
        if piece not in problem.options:
            raise AssignmentError(
                f"--assign: unknown piece {piece!r} (pieces: {', '.join(problem.pieces)})"
            )
        parts = spec.split("/")
        offer, rest = parts[0], parts[1:]
        # "edge" stands for the site's own device (a fleet segment's, or the fastest that fits)
        matches = [o for o in problem.options[piece] if o.offer == offer or (offer == "edge" and o.tier == "edge")]
        for part in rest:
            if part.startswith("r") and part[1:].isdigit():
                matches = [o for o in matches if o.replicas == int(part[1:])]
            elif part.startswith("b") and part[1:].isdigit():
                matches = [o for o in matches if o.batch == int(part[1:])]
            elif part == "shared":
                together = tuple(p for p in problem.pieces if wanted.get(p, "").split("/")[0] == offer
                                 and "shared" in wanted[p].split("/")[1:])
                matches = [o for o in matches if o.pool_pieces == together]
            elif part.startswith("pool[") and part.endswith("]"):  # an option id's own pool
                matches = [o for o in matches if o.pool_pieces == tuple(part[5:-1].split("+"))]
            else:
                matches = [o for o in matches if o.runtime == part]
        if problem.fleet:
            model = problem.piece_model[piece]
            sharing = tuple(lane.segment for lane in problem.lanes
                            if wanted.get(f"{lane.segment}/{model}", "").split("/")[0] == offer)
            matches = [o for o in matches if o.pool is None or o.pool_segments == sharing]
        if not any(part == "shared" or part.startswith("pool[") for part in rest):
            matches = [o for o in matches if not o.pool_pieces]
        if not matches:
            known = sorted({o.offer for o in problem.options[piece]})
            raise AssignmentError(
                f"--assign {piece}={spec}: no such option for {piece!r} "
                f"(offers it can use: {', '.join(known) or 'none'})"
            )
        out[piece] = min(matches, key=lambda o: (o.monthly_usd, o.latency_ms, o.id))
    missing = [p for p in problem.pieces if p not in out]
    if missing:
        raise AssignmentError(f"--assign: no placement given for {', '.join(missing)}")
    return out
