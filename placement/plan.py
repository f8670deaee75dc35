"""The `Plan`: what deployers read (plan.json) and what reports render.

Every number in it is recomputed by `placement.evaluate` from the chosen options, and every
number says where it came from (measured / estimated / imported profile, price snapshot date).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from placement.evaluate import Evaluation
from placement.problem import Problem
from placement.solver import SolveResult

SCHEMA_VERSION = "1.3"  # 1.1: fleet segments (segment, model, pool_segments, segments, site share)
# 1.2: latency parts per piece (batch_fill_ms, wait_exact_ms, wait_source)
# 1.3: co-located pools (pool, pool_pieces)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitHead(_Model):
    """The head of a split model: it runs on the site device, its output crosses the uplink."""

    offer: str
    device: str
    hardware: str
    runtime: str
    latency_ms_p95: float
    latency_source: str
    piece: str = Field(description="profiled head piece, <model>@<tensor>:head")


class PiecePlacement(_Model):
    piece: str = Field(description="the model, or <segment>/<model> in a mixed fleet")
    model: str = Field(default="", description="the model this piece runs")
    segment: str | None = Field(default=None, description="the fleet segment whose sites this serves")
    pool_segments: list[str] = Field(
        default_factory=list,
        description="a cloud pool shared by fleet segments: every segment it serves (paid once)",
    )
    pool: str | None = Field(
        default=None, description="a cloud pool that serves more than this placement (fleet segments or "
        "co-located pieces): its id, the same on every placement it serves")
    pool_pieces: list[str] = Field(
        default_factory=list,
        description="co-located pieces: every piece this cloud pool runs (one server process per replica); "
        "replicas, utilisation, wait and monthly_usd are the pool's, paid once",
    )
    option: str = Field(description="option id: offer/runtime/batch/replicas")
    tier: Literal["edge", "cloud"]
    offer: str
    provider: str
    region: str
    instance_type: str = Field(description="cloud instance type, or edge device id")
    hardware: str = Field(description="hardware class the latency figures belong to")
    runtime: Literal["tvm", "tvm-tuned", "onnxruntime", "openvino", "onnxruntime-cuda", "onnxruntime-trt"]
    tvm_target: dict | None
    batch: int
    replicas: int = Field(description="cloud: pool size; edge: one device per site")
    devices: int = Field(description="machines this placement occupies in total")
    latency_ms_p95: float = Field(description="compute + transfer (a split's cut) + wait: its parts below")
    compute_ms_p95: float = Field(description="the profile's p95 x calls_per_request (source: latency_source; "
                                  "an estimate's error band applies to this part only)")
    wait_ms: float = Field(description="batch fill + queueing wait at the SLO percentile (docs/queueing.md); "
                           "on a site device a bound over the pieces that may share it")
    batch_fill_ms: float = Field(default=0.0, description="the wait for a batch to fill (part of wait_ms)")
    wait_exact_ms: float | None = Field(
        default=None, description="site device: the exact queueing wait with the pieces that do share it")
    wait_source: str = Field(default="", description="the queueing model the wait comes from")
    utilisation: float
    memory_mb: float
    monthly_usd: float = Field(description="cloud compute of this pool; edge devices are itemised in costs")
    latency_source: str = Field(description="measured-local | measured-rpc | measured-served | estimated | imported")
    error_band: float | None = Field(description="multiplicative error band b of an estimated latency: it lies "
                                     "between estimate ÷ (1 + b) and estimate × (1 + b)")
    runtime_alternatives_ms_p95: dict[str, float] = Field(
        description="p95 of every profiled runtime on this hardware; the fastest was chosen"
    )
    price_source: str
    price_date: str
    cut: str | None = Field(default=None, description="split models: the tensor the model is cut at")
    cut_bytes: float = Field(default=0.0, description="bytes of the cut tensor per request")
    cut_transfer_ms: float = Field(default=0.0, description="uplink time of the cut tensor")
    head: SplitHead | None = Field(default=None, description="split models: where the head runs; the "
                                   "fields above describe the tail's cloud pool")


class Route(_Model):
    source: str
    target: str
    bytes_per_request: float
    location_from: str
    location_to: str
    transfer_ms: float


class CostLine(_Model):
    kind: Literal["compute", "edge-capex", "edge-power", "egress"]
    item: str
    quantity: float
    unit: str
    unit_usd: float
    monthly_usd: float
    source: str


class Costs(_Model):
    pricing_model: str
    items: list[CostLine]
    monthly_usd: float
    annual_usd: float
    usd_per_million_requests: float
    by_pricing_model: dict[str, float | None] = Field(
        description="the same placement priced on-demand, spot and reserved; null where an offer lacks that price"
    )


class Latency(_Model):
    p95_ms: float = Field(description="longest source->sink path, summing per-piece percentiles (conservative)")
    percentile: int
    slo_ms: float
    critical_path: list[str]
    finish_ms: dict[str, float]
    min_site_share: float = Field(default=1.0, description="the SLO must hold on this share of sites")
    site_share_meeting_slo: float = Field(default=1.0, description="share of sites whose answers meet the SLO")


class Segment(_Model):
    """One fleet segment: its sites, its device, and how fast its answers come back."""

    name: str
    share: float
    sites: int
    device: str
    owned: bool
    owned_by: Literal["operator", "users"] = Field(
        default="operator", description="users: the users' own devices (phones): neither price nor power charged")
    latency_ms_p95: float
    meets_slo: bool


class SolverStatus(_Model):
    status: Literal["optimal", "feasible", "infeasible", "unknown", "evaluated"]
    objective: str
    objective_value: float | None
    best_bound: float | None
    gap: float | None
    wall_time_s: float
    time_limit_s: float
    seed: int
    workers: int
    options: int
    reason: str = ""


class Baseline(_Model):
    name: str
    monthly_usd: float | None
    latency_ms_p95: float | None
    feasible: bool
    note: str = ""


class ConstraintSlack(_Model):
    constraint: str
    limit: float
    value: float
    slack: float
    unit: str
    binding: bool = Field(description="relaxing this constraint would improve the objective")
    detail: str = ""


class Explanation(_Model):
    binding: list[str] = Field(description="constraint groups that together rule out every plan")
    messages: list[str]
    fastest_p95_ms: float | None = None
    cheapest_meeting_slo_usd: float | None = None
    largest_site_share: float | None = Field(
        default=None, description="mixed fleets: the largest share of sites a plan can bring within the SLO")


class Provenance(_Model):
    spec_sha256: str
    price_date: str
    tvm_version: str | None
    profile_sources: dict[str, int] = Field(description="how many placed latencies come from each source")
    generated_at: str
    tool_version: str


class Plan(_Model):
    schema_version: Literal["1.0", "1.1", "1.2", "1.3"] = SCHEMA_VERSION
    application: str
    status: Literal["optimal", "feasible", "infeasible", "unknown", "evaluated"]
    feasible: bool
    violations: list[str]
    placements: list[PiecePlacement]
    segments: list[Segment] = Field(default_factory=list, description="mixed fleets only")
    routes: list[Route]
    latency: Latency | None
    costs: Costs | None
    budget_usd: float
    solver: SolverStatus
    baselines: list[Baseline] = Field(default_factory=list)
    constraints: list[ConstraintSlack] = Field(default_factory=list)
    explanation: Explanation | None = None
    notes: list[str] = Field(default_factory=list)
    provenance: Provenance

    def write(self, path: str | Path) -> None:
        from profiles.paths import atomic_write_text

        atomic_write_text(Path(path), self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def plan_json_schema() -> dict:
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "placement-optimizer plan"
    return schema


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("placement-optimizer")
    except PackageNotFoundError:  # running from a source tree
        return "0+source"


def make_plan(
    problem: Problem,
    result: SolveResult,
    evaluation: Evaluation | None,
    *,
    tvm_version: str | None,
    status_override: str | None = None,
    price_warning: str | None = None,
) -> Plan:
    """Assemble the plan from the solver's status and the checker's numbers (never the model's).
    `price_warning` (prices older than the spec allows) is worked out by the caller, which knows
    today's date and the price catalog; a plan is a pure function of what it is given."""
    solver_status = SolverStatus(
        status=status_override or result.status, objective=result.objective,
        objective_value=result.objective_value, best_bound=result.best_bound, gap=result.gap,
        wall_time_s=round(result.wall_time_s, 4), time_limit_s=result.time_limit_s,
        seed=result.seed, workers=result.workers, options=result.num_options, reason=result.reason,
    )
    notes = list(problem.notes)
    notes.append("p95 latencies are summed along each path: a conservative bound on the end-to-end p95.")
    if price_warning:
        notes.insert(0, f"warning: {price_warning}")
    if evaluation is None:
        return Plan(
            application=problem.name, status=solver_status.status, feasible=False,
            violations=[result.reason] if result.reason else [], placements=[], routes=[],
            latency=None, costs=None, budget_usd=problem.budget_usd, solver=solver_status,
            notes=notes, provenance=_provenance(problem, {}, tvm_version),
        )
    placements = []
    sources: dict[str, int] = {}
    for piece in problem.pieces:
        o = evaluation.assignment[piece]
        sources[o.latency_source] = sources.get(o.latency_source, 0) + 1
        segment = problem.piece_lane.get(piece) or None
        placements.append(PiecePlacement(
            piece=piece, model=problem.piece_model.get(piece, piece), segment=segment,
            pool_segments=list(o.pool_segments), pool=o.pool, pool_pieces=list(o.pool_pieces),
            option=o.id, tier=o.tier, offer=o.offer, provider=o.provider,
            region=o.region, instance_type=o.instance_type, hardware=o.hardware,
            runtime=o.runtime, tvm_target=o.tvm_target, batch=o.batch, replicas=o.replicas,
            devices=o.replicas if o.tier == "cloud" else problem.devices[o.device_offer].sites,
            latency_ms_p95=round(o.latency_ms, 4), compute_ms_p95=round(o.compute_ms_p95, 4),
            wait_ms=round(o.wait_ms, 4), utilisation=round(o.utilisation, 4),
            batch_fill_ms=round(o.batch_fill_ms, 4), wait_source=o.wait_model,
            wait_exact_ms=None if piece not in evaluation.shared_wait_ms
            else round(evaluation.shared_wait_ms[piece], 4),
            memory_mb=round(o.memory_mb, 2), monthly_usd=round(o.monthly_usd, 2),
            latency_source=o.latency_source, error_band=o.error_band,
            runtime_alternatives_ms_p95={k: round(v, 4) for k, v in o.runtime_alternatives.items()},
            price_source=o.price_source, price_date=o.price_date,
            cut=o.cut, cut_bytes=o.cut_bytes, cut_transfer_ms=round(o.cut_transfer_ms, 4),
            head=None if not o.head else SplitHead(
                offer=o.head.offer, device=o.head.device, hardware=o.head.hardware,
                runtime=o.head.runtime, latency_ms_p95=round(o.head.latency_ms, 4),
                latency_source=o.head.latency_source, piece=o.head.piece),
        ))
        if o.latency_source == "estimated":
            band = f" (×/÷{1 + o.error_band:.2f})" if o.error_band else ""
            notes.append(f"{piece} on {o.hardware}: latency is an estimate{band}, not a measurement.")
        served = problem.served_runtimes.get((problem.piece_model.get(piece, piece), o.hardware), ())
        if served and o.latency_source != "measured-served":
            notes.append(f"warning: {piece} on {o.hardware}: {o.runtime}'s latency was measured alone, while "
                         f"{', '.join(served)} has a row measured while serving (usually slower than alone): "
                         "the plan may prefer it for that; placement verify --store-profiles this plan too.")
    routes = [
        Route(source=t.source, target=t.target, bytes_per_request=t.bytes_per_request,
              location_from=t.location_from, location_to=t.location_to,
              transfer_ms=round(t.transfer_ms, 4))
        for t in evaluation.transfers
    ]
    monthly = evaluation.monthly_usd
    million = problem.requests_per_month / 1e6
    costs = Costs(
        pricing_model=problem.pricing_model,
        items=[CostLine(kind=i.kind, item=i.item, quantity=round(i.quantity, 4), unit=i.unit,
                        unit_usd=round(i.unit_usd, 6), monthly_usd=round(i.monthly_usd, 2),
                        source=i.source) for i in evaluation.cost_items],
        monthly_usd=round(monthly, 2), annual_usd=round(monthly * 12, 2),
        usd_per_million_requests=round(monthly / million, 4) if million else 0.0,
        by_pricing_model={k: (None if v is None else round(v, 2))
                          for k, v in evaluation.cost_by_pricing_model.items()},
    )
    latency = Latency(
        p95_ms=round(evaluation.latency_ms, 4), percentile=problem.slo_percentile,
        slo_ms=problem.slo_ms, critical_path=evaluation.critical_path,
        finish_ms={k: round(v, 4) for k, v in evaluation.finishes_ms.items()},
        min_site_share=problem.min_site_share,
        site_share_meeting_slo=round(evaluation.site_share_meeting_slo, 6),
    )
    segments = []
    for lane in problem.lanes if problem.fleet else ():
        dev = problem.devices[lane.device_key(lane.device)]
        seg_ms = evaluation.segment_latency_ms.get(lane.segment, 0.0)
        segments.append(Segment(name=lane.segment, share=lane.share, sites=lane.sites,
                                device=dev.device, owned=dev.owned, owned_by=dev.owned_by,
                                latency_ms_p95=round(seg_ms, 4),
                                meets_slo=seg_ms <= problem.slo_ms + 1e-9))
    return Plan(
        application=problem.name, status=solver_status.status, feasible=evaluation.feasible,
        violations=evaluation.violations, placements=placements, segments=segments, routes=routes,
        latency=latency,
        costs=costs, budget_usd=problem.budget_usd, solver=solver_status, notes=notes,
        provenance=_provenance(problem, sources, tvm_version),
    )


def _provenance(problem: Problem, sources: dict, tvm_version: str | None) -> Provenance:
    return Provenance(
        spec_sha256=problem.spec_digest, price_date=problem.price_date, tvm_version=tvm_version,
        profile_sources=sources, generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=_tool_version(),
    )


def attach_analysis(plan: Plan, *, baselines=(), slack=(), explanation=None) -> Plan:
    """Add baselines, constraint slack and (for an infeasible spec) the explanation."""
    plan.baselines = [
        Baseline(name=b.name, monthly_usd=None if b.evaluation is None else round(b.evaluation.monthly_usd, 2),
                 latency_ms_p95=None if b.evaluation is None else round(b.evaluation.latency_ms, 4),
                 feasible=b.feasible,
                 note="; ".join(x for x in [b.note] + ([] if b.evaluation is None else b.evaluation.violations) if x))
        for b in baselines
    ]
    plan.constraints = [
        ConstraintSlack(constraint=s.constraint, limit=round(s.limit, 4), value=round(s.value, 4),
                        slack=round(s.slack, 4), unit=s.unit, binding=s.binding, detail=s.detail)
        for s in slack
    ]
    if explanation is not None:
        plan.explanation = Explanation(
            binding=explanation.binding, messages=explanation.messages,
            fastest_p95_ms=None if explanation.fastest_p95_ms is None else round(explanation.fastest_p95_ms, 4),
            cheapest_meeting_slo_usd=None if explanation.cheapest_meeting_slo_usd is None
            else round(explanation.cheapest_meeting_slo_usd, 2),
            largest_site_share=explanation.largest_site_share,
        )
    return plan


def write_schema(path: str | Path) -> None:
    Path(path).write_text(json.dumps(plan_json_schema(), indent=2) + "\n", encoding="utf-8")
