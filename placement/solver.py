"""The CP-SAT placement model: a pure function from a `Problem` to a `SolveResult`.

Built in OR-Tools order (data -> variables -> constraints -> objective -> solve -> decode).
Costs are integer micro-dollars and times integer microseconds; option latencies are rounded
up, so a plan the model accepts never breaks the SLO in the float checker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ortools.sat.python import cp_model

from placement.problem import SINK, SITE, SOURCE, Problem, is_edge

MICRO = 1_000_000  # micro-dollars per dollar
US_PER_MS = 1000  # microseconds per millisecond

Objective = Literal["cost", "latency"]


@dataclass
class SolveResult:
    status: str  # optimal | feasible | infeasible | unknown
    assignment: dict | None  # piece -> option id
    objective: str
    objective_value: float | None  # USD/month or ms
    best_bound: float | None
    gap: float | None
    wall_time_s: float
    workers: int
    seed: int
    time_limit_s: float
    num_options: int
    reason: str = ""
    stats: dict = field(default_factory=dict)


def _usd(x: float) -> int:
    return int(round(x * MICRO))


def _us_up(ms: float) -> int:
    return int(math.ceil(ms * US_PER_MS - 1e-6))


class PlacementModel:
    """The CP-SAT model of one problem, built once and re-solved under other bounds.

    The SLO and the budget are the upper bounds of the `end` and `cost` variables, so a frontier
    sweep or an explanation changes two domains and re-solves with the last plan as a hint,
    instead of rebuilding. With `groups=True` the SLO, budget, edge memory and edge throughput
    constraints hang off assumption literals, so an infeasible model names its binding group.
    """

    GROUPS = ("slo", "budget", "memory", "throughput", "site-share")

    def __init__(self, problem: Problem, *, groups: bool = False):
        self.problem = problem
        self.groups = groups
        built = _build(problem, groups=groups)
        self.model: cp_model.CpModel = built["model"]
        self.on: dict = built["on"]
        self.end = built["end"]
        self.cost = built["cost"]
        self.group_literals: dict = built["groups"]
        self.slo_ms = problem.slo_ms
        self.budget_usd = problem.budget_usd
        self._end_ub = built["end_ub"]
        self._cost_ub = built["cost_ub"]
        self.start = built["start"]
        self._coverage = built["coverage"]
        self._head_us, self._tail_us = built["head_us"], built["tail_us"]
        # Fixed to false when a bound is infeasible on its face (an empty domain would make the
        # model invalid rather than infeasible).
        self._bounds_ok = self.model.new_bool_var("bounds_ok")
        self.model.add_bool_or([self._bounds_ok])
        self.set_bounds(slo_ms=problem.slo_ms, budget_usd=problem.budget_usd)

    def set_bounds(self, *, slo_ms: float | None, budget_usd: float | None) -> None:
        """None lifts the bound. In group mode the bounds stay as built (assumptions decide)."""
        self.slo_ms, self.budget_usd = slo_ms, budget_usd
        if self.groups:
            return
        end_ub = self._end_ub if slo_ms is None else min(self._end_ub, _us_floor(slo_ms))
        cost_ub = self._cost_ub if budget_usd is None else min(self._cost_ub, _usd(budget_usd))
        ok = end_ub >= 0 and cost_ub >= 0
        _set_domain(self.model, self.end, 0, max(end_ub, 0))
        _set_domain(self.model, self.cost, 0, max(cost_ub, 0))
        if self._coverage:
            # Some segments may miss the SLO: no piece's start or option is bounded by it.
            _set_domain(self.model, self._bounds_ok, 0, 1 if ok else 0)
            return
        # Static bounds per piece and place: an option is ruled out when the fastest way to
        # bring its input to where it runs, plus its latency, plus the fastest way from there
        # back to the site, misses the bound (exact: no plan meeting the bound uses it), and a
        # piece's start lies between its earliest arrival and the latest start of a fitting
        # option. Re-derived from scratch on every call, so bounds can also be loosened.
        for p in self.problem.pieces:
            earliest, latest = None, None
            for o in self.problem.options[p]:
                head = self._head_us[p, o.entry]
                earliest = head if earliest is None else min(earliest, head)
                last = end_ub - _us_up(o.latency_ms) - self._tail_us.get((p, o.location), 0)
                fits = head <= last
                if fits:
                    latest = last if latest is None else max(latest, last)
                _set_domain(self.model, self.on[p, o.id], 0, 1 if fits else 0)
            if latest is None:  # no option fits: the bound is infeasible on its face
                ok, latest = False, earliest
            _set_domain(self.model, self.start[p], earliest, max(latest, earliest))
        _set_domain(self.model, self._bounds_ok, 0, 1 if ok else 0)

    def hint(self, assignment: dict | None) -> None:
        self.model.clear_hints()
        if not assignment:
            return
        for (piece, option_id), var in self.on.items():
            self.model.add_hint(var, assignment.get(piece) == option_id)

    def run(self, minimise: str, *, time_limit_s: float, seed: int, workers: int,
            assumptions: list | None = None):
        self.model.minimize(self.end if minimise == "latency" else self.cost)
        self.model.clear_assumptions()
        if assumptions:
            self.model.add_assumptions(assumptions)
        return _run(self.model, time_limit_s, seed, workers)

    def assignment(self, solver) -> dict:
        return {
            piece: next(o.id for o in opts if solver.boolean_value(self.on[piece, o.id]))
            for piece, opts in self.problem.options.items()
        }


def _static_path_bounds(problem: Problem) -> tuple[dict, dict]:
    """Per piece and place, in microseconds of the model: the fastest way any request can bring
    the piece its input at that entry (`head[piece, entry]`), and the fastest way from its output
    at that location back to the site (`tail[piece, location]`; absent when no path leads from
    the piece to the site). A cloud piece must pay a crossing somewhere upstream and downstream,
    so these bounds are tighter than one bound per piece; every term is the model's own rounded
    number, so they never cut a plan the model accepts."""
    options = problem.options
    lat = {(p, o.id): _us_up(o.latency_ms) for p in problem.pieces for o in options[p]}
    inflows: dict[str, list] = {}
    outflows: dict[str, list] = {}
    for f in problem.flows:
        inflows.setdefault(f.target, []).append(f)
        outflows.setdefault(f.source, []).append(f)
    head: dict[tuple, int] = {}
    for p in problem.pieces:  # topological order
        for entry in {o.entry for o in options[p]}:
            arrive = 0
            for f in inflows.get(p, ()):
                if f.source == SOURCE:
                    arrive = max(arrive, _us_up(problem.transfer_ms(f, SITE, entry)))
                    continue
                a = f.source
                arrive = max(arrive, min(
                    head[a, o.entry] + lat[a, o.id] + _us_up(problem.transfer_ms(f, o.location, entry))
                    for o in options[a]))
            head[p, entry] = arrive
    tail: dict[tuple, int] = {}
    for p in reversed(problem.pieces):
        for loc in {o.location for o in options[p]}:
            leave = None
            for f in outflows.get(p, ()):
                if f.target == SINK:
                    t = _us_up(problem.transfer_ms(f, loc, SITE))
                else:
                    b = f.target
                    downstream = [_us_up(problem.transfer_ms(f, loc, o.entry)) + lat[b, o.id] + tail[b, o.location]
                                  for o in options[b] if (b, o.location) in tail]
                    if not downstream:
                        continue
                    t = min(downstream)
                leave = t if leave is None else max(leave, t)
            if leave is not None:
                tail[p, loc] = leave
    return head, tail


def _set_domain(model: cp_model.CpModel, var, lo: int, hi: int) -> None:
    domain = model.proto.variables[var.index].domain
    domain.clear()
    domain.extend([lo, hi])


def _ppm(share: float) -> int:
    return int(round(share * 1_000_000))


def _us_floor(ms: float) -> int:
    return int(math.floor(ms * US_PER_MS + 1e-6))


def solve(
    problem: Problem,
    *,
    objective: Objective = "cost",
    time_limit_s: float = 30.0,
    seed: int = 0,
    workers: int = 2,
    slo_ms: float | None = None,
    budget_usd: float | None = None,
    model: PlacementModel | None = None,
    hint: dict | None = None,
) -> SolveResult:
    """Cheapest (or fastest) placement meeting the SLO and the budget; never raises for an
    infeasible problem, it says so in the result. Pass `model` to re-solve a built model."""
    n_options = sum(len(v) for v in problem.options.values())
    if problem.unplaceable:
        piece, why = next(iter(problem.unplaceable.items()))
        return SolveResult("infeasible", None, objective, None, None, None, 0.0, workers, seed,
                           time_limit_s, n_options, reason=f"{piece}: {why}")
    hint_s = 0.0
    if hint is None and problem.fleet and len(problem.lanes) > 1:
        hint, hint_s = _fleet_hint(problem, objective, time_limit_s / 4, seed, workers)
    pm = model or PlacementModel(problem)
    pm.set_bounds(slo_ms=problem.slo_ms if slo_ms is None else slo_ms,
                  budget_usd=problem.budget_usd if budget_usd is None else budget_usd)
    pm.hint(hint)
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)

    if objective == "latency":
        # Fastest first, then the cheapest among the fastest.
        first = pm.run("latency", **kw)
        if first.status_name(first.status) not in ("OPTIMAL", "FEASIBLE"):
            return _decode(pm, first, objective, None, workers, seed, time_limit_s, n_options)
        best_end = int(first.value(pm.end))
        latency_status = first.status_name(first.status)
        saved = pm.slo_ms
        _set_domain(pm.model, pm.end, 0, best_end)
        pm.hint(pm.assignment(first))
        second = pm.run("cost", **kw)
        pm.set_bounds(slo_ms=saved, budget_usd=pm.budget_usd)
        result = _decode(pm, second, objective, None, workers, seed, time_limit_s, n_options)
        result.objective_value = best_end / US_PER_MS
        result.best_bound = first.best_objective_bound / US_PER_MS
        result.gap = _gap(result.objective_value, result.best_bound)
        result.wall_time_s += first.wall_time + hint_s
        if latency_status != "OPTIMAL" and result.status == "optimal":
            result.status = "feasible"
        return result

    solver = pm.run("cost", **kw)
    result = _decode(pm, solver, objective, MICRO, workers, seed, time_limit_s, n_options)
    result.wall_time_s += hint_s
    return result


def _fleet_hint(problem: Problem, objective: str, time_limit_s: float, seed: int,
                workers: int) -> tuple[dict | None, float]:
    """A first plan for a mixed fleet, from the much smaller problem where a cloud pool serves
    every segment or none: CP-SAT finds a first solution of the full model slowly (thousands of
    pool options), and this one is often close. Used only as a hint; never changes the optimum."""
    import dataclasses

    every = len(problem.lanes)
    options = {p: tuple(o for o in opts if o.pool is None or len(o.pool_segments) == every)
               for p, opts in problem.options.items()}
    if any(not opts for opts in options.values()):
        return None, 0.0
    small = dataclasses.replace(problem, options=options)
    result = solve(small, objective=objective, time_limit_s=time_limit_s, seed=seed, workers=workers,
                   hint={})
    return result.assignment, result.wall_time_s


def _run(model: cp_model.CpModel, time_limit_s: float, seed: int, workers: int):
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = int(workers)
    # Interleaved search makes a multi-worker solve repeatable: same seed, same plan (as long as
    # it finishes within the time limit).
    solver.parameters.interleave_search = True
    solver.status = solver.solve(model)
    return solver


def _gap(value: float | None, bound: float | None) -> float | None:
    if value is None or bound is None:
        return None
    if value == 0:
        return 0.0
    return abs(value - bound) / abs(value)


def _decode(pm, solver, objective, scale, workers, seed, time_limit_s, n_options):
    status = solver.status_name(solver.status)
    mapped = {"OPTIMAL": "optimal", "FEASIBLE": "feasible", "INFEASIBLE": "infeasible"}.get(
        status, "unknown")
    if mapped in ("optimal", "feasible"):
        assignment = pm.assignment(solver)
        value = solver.objective_value / scale if scale else solver.objective_value
        bound = solver.best_objective_bound / scale if scale else solver.best_objective_bound
        reason = ""
    else:
        assignment, value, bound = None, None, None
        reason = ("no placement meets the SLO, budget, memory and utilisation constraints"
                  if mapped == "infeasible" else "no solution found within the time limit")
    return SolveResult(
        status=mapped, assignment=assignment, objective=objective, objective_value=value,
        best_bound=bound, gap=_gap(value, bound) if mapped == "feasible" else (0.0 if value is not None else None),
        wall_time_s=solver.wall_time, workers=workers, seed=seed, time_limit_s=time_limit_s,
        num_options=n_options, reason=reason,
        stats={"branches": solver.num_branches, "conflicts": solver.num_conflicts},
    )


def _build(problem: Problem, *, groups: bool) -> dict:
    model = cp_model.CpModel()
    coverage = problem.fleet and problem.min_site_share < 1.0 - 1e-9
    names = [g for g in PlacementModel.GROUPS if g != "site-share" or coverage]
    group = {g: model.new_bool_var(f"enforce[{g}]") for g in names} if groups else {}

    def enforced(constraint, name):
        if groups:
            constraint.only_enforce_if(group[name])
    pieces = problem.pieces

    # --- data -------------------------------------------------------------------------------
    # Where a piece's output leaves from (`locations`) and where its input arrives (`entries`):
    # the same place, except for a split model whose head runs at the site and tail in the cloud.
    locations = {p: sorted({o.location for o in problem.options[p]}) for p in pieces}
    entries = {p: sorted({o.entry for o in problem.options[p]}) for p in pieces}
    horizon = sum(max(o.latency_ms for o in problem.options[p]) for p in pieces)
    horizon += sum(
        max(problem.transfer_ms(f, a, b)
            for a in ([SITE] if f.source == SOURCE else locations[f.source])
            for b in ([SITE] if f.target == SINK else entries[f.target]))
        for f in problem.flows
    )
    horizon_us = _us_up(horizon) + 1

    # --- variables --------------------------------------------------------------------------
    on = {(p, o.id): model.new_bool_var(f"on[{p},{o.id}]") for p in pieces for o in problem.options[p]}
    at = {(p, loc): model.new_bool_var(f"at[{p},{loc}]") for p in pieces for loc in locations[p]}
    at_in = {}
    for p in pieces:
        split = any(o.entry != o.location for o in problem.options[p])
        for loc in entries[p]:
            at_in[p, loc] = model.new_bool_var(f"at_in[{p},{loc}]") if split else at[p, loc]
    start = {p: model.new_int_var(0, horizon_us, f"start[{p}]") for p in pieces}
    end = model.new_int_var(0, horizon_us, "end")
    used = {d: model.new_bool_var(f"used[{problem.devices[d].label}]") for d in problem.devices}
    # A mixed fleet may leave some segments outside the SLO: each segment's answer arrives at
    # its own end, and `end` (the latency the SLO bounds) covers the segments that meet it.
    lane_end = ({lane.segment: model.new_int_var(0, horizon_us, f"end[{lane.segment}]")
                 for lane in problem.lanes} if coverage else {})

    lat = {p: sum(_us_up(o.latency_ms) * on[p, o.id] for o in problem.options[p]) for p in pieces}

    # --- constraints ------------------------------------------------------------------------
    for p in pieces:
        # Each piece runs in exactly one place, one way.
        model.add_exactly_one(on[p, o.id] for o in problem.options[p])
        # at[p, loc] says where the chosen option runs.
        for loc in locations[p]:
            model.add(at[p, loc] == sum(on[p, o.id] for o in problem.options[p] if o.location == loc))
        for loc in entries[p]:
            if at_in[p, loc] is not at.get((p, loc)):
                model.add(at_in[p, loc] == sum(on[p, o.id] for o in problem.options[p] if o.entry == loc))

    pair: dict[int, dict] = {}  # flow index -> {(loc_a, loc_b): both-here literal}
    for i, flow in enumerate(problem.flows):
        a, b = flow.source, flow.target
        finish_a = 0 if a == SOURCE else start[a] + lat[a]
        if b == SINK:
            arrive_b = lane_end[problem.piece_lane[a]] if coverage and a != SOURCE else end
        else:
            arrive_b = start[b]
        if a == SOURCE and b == SINK:
            continue
        if a == SOURCE or b == SINK:
            # One end is the site: the crossing time is linear in where the other end runs.
            if a == SOURCE:
                cross = sum(_us_up(problem.transfer_ms(flow, SITE, loc)) * at_in[b, loc] for loc in entries[b])
            else:
                cross = sum(_us_up(problem.transfer_ms(flow, loc, SITE)) * at[a, loc] for loc in locations[a])
            # Data reaches a piece (or the answer the site) after its producer and the crossing.
            model.add(arrive_b >= finish_a + cross)
            continue
        # Both ends are pieces. The crossing time is the largest of a few linear terms, each
        # exact for one kind of crossing and at most the true time for every other kind:
        # site->cloud, cloud->site, within a region, across regions, between two site devices.
        tr = model.new_int_var(0, horizon_us, f"cross[{a}->{b}]")
        edge_b = sum(at_in[b, lb] for lb in entries[b] if is_edge(lb))
        cloud_a = sum(at[a, la] for la in locations[a] if not is_edge(la))
        cloud_b = sum(at_in[b, lb] for lb in entries[b] if not is_edge(lb))
        cloud_locs = sorted({loc for loc in locations[a] + entries[b] if not is_edge(loc)})
        edge_locs = sorted({loc for loc in locations[a] + entries[b] if is_edge(loc) and loc != SITE})
        some_edge = next((loc for loc in edge_locs), SITE)
        some_cloud = cloud_locs[0] if cloud_locs else None

        def at_or_0(node, loc, b=b):
            return (at_in if node == b else at).get((node, loc), 0)

        def t(la, lb, flow=flow):
            return _us_up(problem.transfer_ms(flow, la, lb))

        for loc in cloud_locs:
            # up: a at the site, b in this cloud location
            model.add(tr >= t(some_edge, loc) * (at_or_0(b, loc) - cloud_a))
            # down: a in this cloud location, b at the site
            model.add(tr >= t(loc, some_edge) * (at_or_0(a, loc) - cloud_b))
            # across: a here, b in another cloud location
            other = next((o for o in cloud_locs if o != loc), None)
            if other is not None:
                model.add(tr >= t(loc, other) * (at_or_0(a, loc) + cloud_b - at_or_0(b, loc) - 1))
        if some_cloud is not None:
            # within one cloud location (two pools, one network hop)
            model.add(tr >= t(some_cloud, some_cloud) * (cloud_a + cloud_b - 1))
        for dev in edge_locs:
            other = next((o for o in edge_locs if o != dev), None)
            if other is not None:
                # two different devices at the site
                model.add(tr >= t(dev, other) * (at_or_0(a, dev) + edge_b - at_or_0(b, dev) - 1))
        # Data reaches the consumer after the producer finishes and the data crosses over.
        model.add(start[b] >= finish_a + tr)
        pair[i] = (edge_b, {loc: at_or_0(a, loc) for loc in cloud_locs})

    # Redundant for whole plans, but the LP relaxation otherwise lets a piece run half at the
    # site and half in the cloud and pay no crossing: each piece starts no earlier than its input
    # can reach the place it runs, and its answer needs at least the fastest way back.
    head_us, tail_us = _static_path_bounds(problem)
    for p in pieces:
        opts = problem.options[p]
        model.add(start[p] >= sum(head_us[p, o.entry] * on[p, o.id] for o in opts))
        if all((p, o.location) in tail_us for o in opts):
            back_by = lane_end[problem.piece_lane[p]] if coverage else end
            model.add(back_by >= start[p] + sum(
                (_us_up(o.latency_ms) + tail_us[p, o.location]) * on[p, o.id] for o in opts))

    if coverage:
        meets = {seg: model.new_bool_var(f"meets_slo[{seg}]") for seg in lane_end}
        for seg, seg_end in lane_end.items():
            # A segment counts as meeting the SLO only if its answers are back by `end`...
            model.add(end >= seg_end).only_enforce_if(meets[seg])
        # ...and the segments that do cover the required share of sites.
        enforced(model.add(sum(_ppm(problem.lane_share(seg)) * lit for seg, lit in meets.items())
                           >= _ppm(problem.min_site_share)), "site-share")

    # A cloud pool shared by several segments serves all of them or none.
    pools: dict[str, list] = {}
    for p in pieces:
        for o in problem.options[p]:
            if o.pool is not None:
                pools.setdefault(o.pool, []).append(on[p, o.id])
    for members in pools.values():
        for lit in members[1:]:
            model.add(lit == members[0])

    # The answer is back at the site within the SLO (p-th percentile, per-piece sum); outside
    # group mode this is the upper bound of `end`, set by PlacementModel.set_bounds.
    if groups:
        enforced(model.add(end <= _us_floor(problem.slo_ms)), "slo")

    for d, dev in problem.devices.items():
        users = [(p, o) for p in pieces for o in problem.options[p] if o.device_offer == d]
        # The sites (of this segment) own one of this device model if any piece runs on it.
        for p, o in users:
            model.add_implication(on[p, o.id], used[d])
        model.add(used[d] <= sum(on[p, o.id] for p, o in users))
        # Pieces sharing a site's device stay under the utilisation cap and fit its memory
        # together. (Scaled by `used`: the same for whole plans, but it tells the LP relaxation
        # that a device half-used by fractions of pieces is still a device to pay for.)
        enforced(model.add(
            sum(int(math.ceil(o.device_utilisation * MICRO)) * on[p, o.id] for p, o in users)
            <= int(problem.utilisation_cap * MICRO) * used[d]
        ), "throughput")
        enforced(model.add(
            sum(int(math.ceil(o.device_memory_mb)) * on[p, o.id] for p, o in users)
            <= int(dev.memory_mb) * used[d]
        ), "memory")

    # Money: cloud pools (a shared pool once) + edge devices at their sites + tiered egress.
    paid: set[str] = set()
    cost_terms = []
    for p in pieces:
        for o in problem.options[p]:
            if o.tier == "cloud" and (o.pool is None or o.pool not in paid):
                cost_terms.append(_usd(o.monthly_usd) * on[p, o.id])
                if o.pool is not None:
                    paid.add(o.pool)
    cost_terms += [_usd(dev.monthly_usd) * used[d] for d, dev in problem.devices.items()]
    cost_terms += _egress_terms(model, problem, at, pair)
    cost_ub = _cost_upper_bound(problem)
    cost = model.new_int_var(0, cost_ub, "cost")
    model.add(cost == sum(cost_terms))
    # The plan stays within the monthly budget (outside group mode: the bound of `cost`).
    if groups:
        enforced(model.add(cost <= _usd(problem.budget_usd)), "budget")

    return {"model": model, "on": on, "at": at, "start": start, "end": end, "cost": cost,
            "used": used, "groups": group, "end_ub": horizon_us, "cost_ub": cost_ub,
            "coverage": coverage, "head_us": head_us, "tail_us": tail_us}


def _cost_upper_bound(problem: Problem) -> int:
    ub = sum(_usd(max((o.monthly_usd for o in opts), default=0.0)) for opts in problem.options.values())
    ub += sum(_usd(d.monthly_usd) for d in problem.devices.values())
    total_gb = sum(problem.egress_gb(f) for f in problem.flows)
    ub += sum(_usd(max((price for _, price in tiers), default=0.0) * total_gb) + MICRO
              for tiers in problem.egress_tiers.values())
    return ub + MICRO


def _egress_terms(model: cp_model.CpModel, problem: Problem, at: dict, pair: dict) -> list:
    """Egress MB per provider, priced over its tiers (free tier first, then falling prices)."""
    providers = sorted(problem.egress_tiers)
    volume_terms: dict[str, list] = {p: [] for p in providers}
    for i, flow in enumerate(problem.flows):
        if flow.source == SOURCE:
            continue  # into the cloud: ingress is free
        mb = int(math.ceil(problem.egress_gb(flow) * 1000.0))
        if mb <= 0:
            continue
        for provider in providers:
            def in_cloud(loc: str, provider: str = provider) -> bool:
                return not is_edge(loc) and loc.split(":", 1)[0] == provider

            # An answer leaves `provider`'s cloud when the producer runs there and the consumer
            # runs at the site.
            if flow.target == SINK:
                lits = [lit for (p, loc), lit in at.items() if p == flow.source and in_cloud(loc)]
            else:
                edge_b, cloud_at = pair[i]
                here = [lit for loc, lit in cloud_at.items() if in_cloud(loc) and not isinstance(lit, int)]
                if not here:
                    continue
                crosses = model.new_bool_var(f"egress[{flow.source}->{flow.target},{provider}]")
                model.add(crosses >= sum(here) + edge_b - 1)
                lits = [crosses]
            volume_terms[provider] += [(mb, lit) for lit in lits]

    terms = []
    for provider in providers:
        if not volume_terms[provider]:
            continue
        max_mb = sum(mb for mb, _ in volume_terms[provider])  # an upper bound; a flow counts once
        volume = model.new_int_var(0, max_mb, f"egress_mb[{provider}]")
        model.add(volume == sum(mb * lit for mb, lit in volume_terms[provider]))
        tiers = problem.egress_tiers[provider]
        fill = []
        prev_full = None
        for k, (width_gb, price) in enumerate(tiers):
            width_mb = max_mb if math.isinf(width_gb) else min(max_mb, int(round(width_gb * 1000)))
            amount = model.new_int_var(0, width_mb, f"egress_mb[{provider},tier{k}]")
            if prev_full is not None:
                # A tier only fills once the cheaper-numbered tier before it is full.
                model.add(amount == 0).only_enforce_if(~prev_full)
            full = model.new_bool_var(f"egress_full[{provider},tier{k}]")
            model.add(amount == width_mb).only_enforce_if(full)
            fill.append(amount)
            # price is USD per GB -> micro-dollars per MB
            terms.append(int(round(price * 1000)) * amount)
            prev_full = full
        model.add(volume == sum(fill))
    return terms
