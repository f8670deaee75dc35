"""What a plan asks to deploy, as pure data: the units (one piece on one hardware class with one
runtime), the cloud pools that serve them and the edge sites (one per fleet segment) that run them.

A whole model is one unit; a split model is two: its head on the site device and its tail in the
cloud pool the placement describes. Units are keyed by what their artifact depends on (source
piece, hardware, runtime, batch), so pieces placed alike share one compiled artifact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from placement.plan import Plan
from profiles.split import split_piece_names

SOURCE, SINK = "source", "sink"


@dataclass(frozen=True)
class Unit:
    """One deployable piece: `piece` names the profiled ONNX piece it runs."""

    name: str            # the model, with :head / :tail for a split model
    piece: str           # the ONNX piece (model name, or <model>@<tensor>:head|tail)
    model: str
    segment: str | None
    tier: str
    offer: str
    hardware: str
    runtime: str
    tvm_target: dict | None
    batch: int

    @property
    def artifact_key(self) -> tuple[str, str, str, int]:
        return (self.piece, self.hardware, self.runtime, self.batch)


@dataclass
class Pool:
    """One cloud pool: one instance type in one region serving one model (for every segment
    that shares it), or several co-located models (`model` names them joined by '+'), all in
    one server process per replica."""

    name: str
    model: str
    offer: str
    provider: str
    region: str
    instance_type: str
    hardware: str
    replicas: int
    segments: list[str]
    units: list[Unit] = field(default_factory=list)


@dataclass
class Site:
    """The edge device of one fleet segment (or of every site, without a fleet)."""

    name: str
    device: str
    offer: str
    hardware: str
    units: list[Unit] = field(default_factory=list)
    # for each unit on the device: where its output goes (unit name, "pool:<pool>", or sink)
    next_hops: dict[str, list[str]] = field(default_factory=dict)
    entry: list[str] = field(default_factory=list)


@dataclass
class Layout:
    pools: list[Pool]
    sites: list[Site]

    @property
    def units(self) -> list[Unit]:
        seen, out = set(), []
        for u in [u for p in self.pools for u in p.units] + [u for s in self.sites for u in s.units]:
            if u.artifact_key not in seen:
                seen.add(u.artifact_key)
                out.append(u)
        return out


def dns_name(*parts: str, limit: int = 63) -> str:
    """A Kubernetes (DNS-1123 label) name from `parts`: lower case, digits and '-'."""
    text = "-".join(p for p in parts if p)
    text = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    text = re.sub(r"-{2,}", "-", text)
    return text[:limit].rstrip("-") or "x"


def file_name(text: str) -> str:
    """A file-system-safe name for a piece or segment."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def plan_layout(plan: Plan) -> Layout:
    """The pools and sites of a feasible plan, with the unit each placement runs."""
    pools: dict[tuple[str, str], Pool] = {}
    sites: dict[str, Site] = {}
    # where each plan piece's input arrives, and its last unit (whose output leaves it)
    entry_of: dict[str, tuple[str, str]] = {}   # piece -> ("site"|"pool", unit name)
    exit_of: dict[str, tuple[str, str]] = {}

    def site_for(segment: str | None, device: str, offer: str, hardware: str) -> Site:
        name = segment or device
        if name not in sites:
            sites[name] = Site(name=name, device=device, offer=offer, hardware=hardware)
        return sites[name]

    def pool_for(p) -> Pool:
        key = (pool_model(p), p.pool or p.option)
        if key not in pools:
            pools[key] = Pool(
                name=dns_name(pool_model(p), p.instance_type, p.region), model=pool_model(p), offer=p.offer,
                provider=p.provider, region=p.region, instance_type=p.instance_type,
                hardware=p.hardware, replicas=p.replicas, segments=list(p.pool_segments))
        return pools[key]

    for p in plan.placements:
        model = p.model or p.piece
        if p.cut and p.head:
            head_piece, tail_piece = split_piece_names(model, p.cut)
            head = Unit(f"{model}:head", head_piece, model, p.segment, "edge", p.head.offer,
                        p.head.hardware, p.head.runtime, _target_of(p.head.hardware), 1)
            tail = Unit(f"{model}:tail", tail_piece, model, p.segment, "cloud", p.offer,
                        p.hardware, p.runtime, p.tvm_target, p.batch)
            site = site_for(p.segment, p.head.device, p.head.offer, p.head.hardware)
            site.units.append(head)
            pool = pool_for(p)
            if tail.artifact_key not in {u.artifact_key for u in pool.units}:
                pool.units.append(tail)
            site.next_hops[head.name] = [f"pool:{pool.name}/{tail.name}"]
            entry_of[p.piece] = ("site", head.name)
            exit_of[p.piece] = ("pool", f"{pool.name}/{tail.name}")
            continue
        unit = Unit(model, model, model, p.segment, p.tier, p.offer, p.hardware, p.runtime,
                    p.tvm_target, p.batch)
        if p.tier == "edge":
            site = site_for(p.segment, p.instance_type, p.offer, p.hardware)
            site.units.append(unit)
            entry_of[p.piece] = exit_of[p.piece] = ("site", unit.name)
        else:
            pool = pool_for(p)
            if unit.artifact_key not in {u.artifact_key for u in pool.units}:
                pool.units.append(unit)
            ref = f"{pool.name}/{_pool_unit_name(pool, unit)}"
            entry_of[p.piece] = exit_of[p.piece] = ("pool", ref)

    segment_of = {p.piece: p.segment for p in plan.placements}
    for route in plan.routes:
        if route.source == SOURCE and route.target in entry_of:
            where, name = entry_of[route.target]
            site = _site_of(sites, segment_of.get(route.target), plan)
            if site is not None:
                site.entry.append(name if where == "site" else f"pool:{name}")
            continue
        if route.source not in exit_of:
            continue
        where, name = exit_of[route.source]
        if where != "site":
            continue  # a cloud pool's next hop is the site's business (or the caller's)
        site = _site_of(sites, segment_of.get(route.source), plan)
        if route.target == SINK:
            hop = SINK
        else:
            to_where, to_name = entry_of[route.target]
            hop = to_name if to_where == "site" else f"pool:{to_name}"
        site.next_hops.setdefault(name, []).append(hop)
    return Layout(pools=list(pools.values()), sites=list(sites.values()))


def pool_model(p) -> str:
    """The model(s) a placement's cloud pool runs: its own, or its co-located pieces'."""
    return "+".join(p.pool_pieces) if p.pool_pieces else (p.model or p.piece)


def _pool_unit_name(pool: Pool, unit: Unit) -> str:
    for u in pool.units:
        if u.artifact_key == unit.artifact_key:
            return u.name
    return unit.name


def _site_of(sites: dict[str, Site], segment: str | None, plan: Plan) -> Site | None:
    if segment and segment in sites:
        return sites[segment]
    if not segment and len(sites) == 1:
        return next(iter(sites.values()))
    if not segment:
        devices = {p.instance_type for p in plan.placements if p.tier == "edge" and not p.segment}
        for name in devices:
            if name in sites:
                return sites[name]
    return None


def _target_of(hardware: str) -> dict | None:
    from profiles.hardware import get_hardware

    try:
        target = get_hardware(hardware).tvm_target
    except KeyError:
        return None
    return dict(target) if target else None
