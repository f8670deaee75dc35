"""The CP-SAT model of one placement problem, built once and re-solved under other limits.

Built in OR-Tools order: data -> variables -> constraints -> objective; `run` solves and
decodes into a `ModelRun`. A frontier sweep or an explanation changes the SLO and budget limits
(`set_limits`) and re-solves with the last plan as a hint, instead of rebuilding. With
`groups=True` the SLO, budget, edge memory, edge throughput and site-share constraints hang off
assumption literals, so an infeasible run names the groups to blame.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from placement.problem import SINK, SITE, SOURCE, Problem, is_edge
from placement.solver.egress import egress_terms
from placement.solver.paths import cost_upper_bound, static_path_bounds
from placement.solver.units import MICRO, US_PER_MS, ppm, us_floor, us_up, usd

GROUPS = ("slo", "budget", "memory", "throughput", "site-share")
_STATUS = {"OPTIMAL": "optimal", "FEASIBLE": "feasible", "INFEASIBLE": "infeasible"}


@dataclass(frozen=True)
class ModelRun:
    """One solve of a `PlacementModel`: what CP-SAT found, decoded into domain terms."""

    status: str  # optimal | feasible | infeasible | unknown
    minimised: str  # cost | latency
    assignment: dict | None  # piece -> option id (optimal or feasible only)
    objective_value: float | None  # USD/month (cost) or ms (latency)
    best_bound: float | None  # same unit
    wall_time_s: float
    stats: dict = field(default_factory=dict)
    blamed: tuple[str, ...] = ()  # infeasible under assumptions: the groups CP-SAT names

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "feasible")

    @property
    def gap(self) -> float | None:
        if self.status == "feasible":
            return relative_gap(self.objective_value, self.best_bound)
        return 0.0 if self.objective_value is not None else None


def relative_gap(value: float | None, bound: float | None) -> float | None:
    if value is None or bound is None:
        return None
    if value == 0:
        return 0.0
    return abs(value - bound) / abs(value)


class PlacementModel:
    """The CP-SAT model of one `Problem` (which it never changes)."""

    GROUPS = GROUPS

    def __init__(self, problem: Problem, *, groups: bool = False):
        self.problem = problem
        self.groups = groups
        self.model = cp_model.CpModel()
        self._data()
        self._variables()
        self._constraints()
        self.slo_ms: float | None = problem.slo_ms
        self.budget_usd: float | None = problem.budget_usd
        self.set_limits(slo_ms=problem.slo_ms, budget_usd=problem.budget_usd)

    # --- data ---------------------------------------------------------------------------------
    def _data(self) -> None:
        pb = self.problem
        pieces = pb.pieces
        # Where a piece's output leaves from (`locations`) and where its input arrives (`entries`):
        # the same place, except for a split model whose head runs at the site and tail in the cloud.
        self.locations = {p: sorted({o.location for o in pb.options[p]}) for p in pieces}
        self.entries = {p: sorted({o.entry for o in pb.options[p]}) for p in pieces}
        horizon = sum(max(o.latency_ms for o in pb.options[p]) for p in pieces)
        horizon += sum(
            max(pb.transfer_ms(f, a, b)
                for a in ([SITE] if f.source == SOURCE else self.locations[f.source])
                for b in ([SITE] if f.target == SINK else self.entries[f.target]))
            for f in pb.flows
        )
        self.horizon_us = us_up(horizon) + 1
        self.cost_ub = cost_upper_bound(pb)
        # A mixed fleet may leave some segments outside the SLO (`min_site_share` < 1).
        self.coverage = pb.fleet and pb.min_site_share < 1.0 - 1e-9
        self.latency_us = {(p, o.id): us_up(o.latency_ms) for p in pieces for o in pb.options[p]}
        self.head_us, self.tail_us = static_path_bounds(pb)
        self.device_users = {d: [(p, o) for p in pieces for o in pb.options[p] if o.device_offer == d]
                             for d in pb.devices}

    # --- variables ----------------------------------------------------------------------------
    def _variables(self) -> None:
        pb, m, h = self.problem, self.model, self.horizon_us
        pieces = pb.pieces
        names = [g for g in GROUPS if g != "site-share" or self.coverage]
        # enforce[group]: an assumption literal per constraint group (explanations only).
        self.group_literals = {g: m.new_bool_var(f"enforce[{g}]") for g in names} if self.groups else {}
        # on[piece, option]: the piece runs as this option.
        self.on = {(p, o.id): m.new_bool_var(f"on[{p},{o.id}]") for p in pieces for o in pb.options[p]}
        # at[piece, location]: its output leaves from here; at_in: its input arrives here.
        self.at = {(p, loc): m.new_bool_var(f"at[{p},{loc}]") for p in pieces for loc in self.locations[p]}
        self.at_in = {}
        for p in pieces:
            split = any(o.entry != o.location for o in pb.options[p])
            for loc in self.entries[p]:
                self.at_in[p, loc] = m.new_bool_var(f"at_in[{p},{loc}]") if split else self.at[p, loc]
        # start[piece]: microseconds after the request when the piece starts; end: the answer is back.
        self.start = {p: m.new_int_var(0, h, f"start[{p}]") for p in pieces}
        self.end = m.new_int_var(0, h, "end")
        # used[device]: the sites (of its segment) own one of this device model.
        self.used = {d: m.new_bool_var(f"used[{pb.devices[d].label}]") for d in pb.devices}
        # end[segment]: when that segment's answers are back (only when some may miss the SLO).
        self.lane_end = ({lane.segment: m.new_int_var(0, h, f"end[{lane.segment}]") for lane in pb.lanes}
                         if self.coverage else {})
        # cost: micro-dollars per month.
        self.cost = m.new_int_var(0, self.cost_ub, "cost")
        self.lat = {p: sum(self.latency_us[p, o.id] * self.on[p, o.id] for o in pb.options[p]) for p in pieces}

    def _enforced(self, constraint, group: str) -> None:
        if self.groups:
            constraint.only_enforce_if(self.group_literals[group])

    # --- constraints --------------------------------------------------------------------------
    def _constraints(self) -> None:
        pb, m, on = self.problem, self.model, self.on
        for p in pb.pieces:
            # Each piece runs in exactly one place, one way.
            m.add_exactly_one(on[p, o.id] for o in pb.options[p])
            # at[p, loc] says where the chosen option runs...
            for loc in self.locations[p]:
                m.add(self.at[p, loc] == sum(on[p, o.id] for o in pb.options[p] if o.location == loc))
            # ...and at_in[p, loc] where its input must arrive.
            for loc in self.entries[p]:
                if self.at_in[p, loc] is not self.at.get((p, loc)):
                    m.add(self.at_in[p, loc] == sum(on[p, o.id] for o in pb.options[p] if o.entry == loc))
        self._dataflow()
        self._path_bounds()
        if self.coverage:
            self._site_share()
        self._pools()
        # The answer is back at the site within the SLO (p-th percentile latency, a per-piece sum).
        self._slo = m.add(self.end <= self.horizon_us)
        self._enforced(self._slo, "slo")
        self._devices()
        # The monthly cost is cloud pools (a shared pool once) + edge devices + every billed
        # transfer (tiered internet egress, flat inter-region rates).
        m.add(self.cost == sum(self._cost_terms()))
        # The plan stays within the monthly budget.
        self._budget = m.add(self.cost <= self.cost_ub)
        self._enforced(self._budget, "budget")

    def _dataflow(self) -> None:
        """Precedence along every dataflow edge, with the crossing time of where its ends run."""
        pb, m, at, at_in = self.problem, self.model, self.at, self.at_in
        locations, entries = self.locations, self.entries
        for flow in pb.flows:
            a, b = flow.source, flow.target
            finish_a = 0 if a == SOURCE else self.start[a] + self.lat[a]
            if b == SINK:
                arrive_b = self.lane_end[pb.piece_lane[a]] if self.coverage and a != SOURCE else self.end
            else:
                arrive_b = self.start[b]
            if a == SOURCE and b == SINK:
                continue
            if a == SOURCE or b == SINK:
                # One end is the site: the crossing time is linear in where the other end runs.
                if a == SOURCE:
                    cross = sum(us_up(pb.transfer_ms(flow, SITE, loc)) * at_in[b, loc] for loc in entries[b])
                else:
                    cross = sum(us_up(pb.transfer_ms(flow, loc, SITE)) * at[a, loc] for loc in locations[a])
                # Data reaches a piece (or the answer the site) after its producer and the crossing.
                m.add(arrive_b >= finish_a + cross)
                continue
            # Both ends are pieces. The crossing time is the largest of a few linear terms, each
            # exact for one kind of crossing and at most the true time for every other kind:
            # site->cloud, cloud->site, within a region, across regions, between two site devices.
            tr = m.new_int_var(0, self.horizon_us, f"cross[{a}->{b}]")
            edge_b = sum(at_in[b, lb] for lb in entries[b] if is_edge(lb))
            cloud_a = sum(at[a, la] for la in locations[a] if not is_edge(la))
            cloud_b = sum(at_in[b, lb] for lb in entries[b] if not is_edge(lb))
            cloud_locs = sorted({loc for loc in locations[a] + entries[b] if not is_edge(loc)})
            edge_locs = sorted({loc for loc in locations[a] + entries[b] if is_edge(loc) and loc != SITE})
            some_edge = next((loc for loc in edge_locs), SITE)
            some_cloud = cloud_locs[0] if cloud_locs else None

            def here(node, loc, b=b):
                return (at_in if node == b else at).get((node, loc), 0)

            def t(la, lb, flow=flow):
                return us_up(pb.transfer_ms(flow, la, lb))

            for loc in cloud_locs:
                # up: a at the site, b in this cloud location
                m.add(tr >= t(some_edge, loc) * (here(b, loc) - cloud_a))
                # down: a in this cloud location, b at the site
                m.add(tr >= t(loc, some_edge) * (here(a, loc) - cloud_b))
                # across: a here, b in another cloud location
                other = next((o for o in cloud_locs if o != loc), None)
                if other is not None:
                    m.add(tr >= t(loc, other) * (here(a, loc) + cloud_b - here(b, loc) - 1))
            if some_cloud is not None:
                # within one cloud location (two pools, one network hop)
                m.add(tr >= t(some_cloud, some_cloud) * (cloud_a + cloud_b - 1))
            for dev in edge_locs:
                other = next((o for o in edge_locs if o != dev), None)
                if other is not None:
                    # two different devices at the site
                    m.add(tr >= t(dev, other) * (here(a, dev) + edge_b - here(b, dev) - 1))
            # Data reaches the consumer after the producer finishes and the data crosses over.
            m.add(self.start[b] >= finish_a + tr)

    def _path_bounds(self) -> None:
        # Redundant for whole plans, but the LP relaxation otherwise lets a piece run half at the
        # site and half in the cloud and pay no crossing: each piece starts no earlier than its
        # input can reach the place it runs, and its answer needs at least the fastest way back.
        pb, m, on = self.problem, self.model, self.on
        for p in pb.pieces:
            opts = pb.options[p]
            m.add(self.start[p] >= sum(self.head_us[p, o.entry] * on[p, o.id] for o in opts))
            if all((p, o.location) in self.tail_us for o in opts):
                back_by = self.lane_end[pb.piece_lane[p]] if self.coverage else self.end
                m.add(back_by >= self.start[p] + sum(
                    (self.latency_us[p, o.id] + self.tail_us[p, o.location]) * on[p, o.id] for o in opts))

    def _site_share(self) -> None:
        pb, m = self.problem, self.model
        meets = {seg: m.new_bool_var(f"meets_slo[{seg}]") for seg in self.lane_end}
        for seg, seg_end in self.lane_end.items():
            # A segment counts as meeting the SLO only if its answers are back by `end`...
            m.add(self.end >= seg_end).only_enforce_if(meets[seg])
        # ...and the segments that do cover the required share of sites.
        self._enforced(m.add(sum(ppm(pb.lane_share(seg)) * lit for seg, lit in meets.items())
                             >= ppm(pb.min_site_share)), "site-share")

    def _pools(self) -> None:
        pools: dict[str, list] = {}
        pieces: dict[str, set] = {}
        for p in self.problem.pieces:
            for o in self.problem.options[p]:
                if o.pool is not None:
                    pools.setdefault(o.pool, []).append(self.on[p, o.id])
                    pieces.setdefault(o.pool, {p, *o.pool_members}).discard(p)
        for pool, members in pools.items():
            # A cloud pool shared by several segments, or by co-located pieces, serves all of them or none...
            for lit in members[1:]:
                self.model.add(lit == members[0])
            # ...and none when one of them has no option in it (a problem restricted by a baseline).
            if pieces[pool]:
                self.model.add(members[0] == 0)

    def _devices(self) -> None:
        pb, m, on = self.problem, self.model, self.on
        for d, dev in pb.devices.items():
            users = self.device_users[d]
            # The sites (of this segment) own one of this device model if any piece runs on it.
            for p, o in users:
                m.add_implication(on[p, o.id], self.used[d])
            m.add(self.used[d] <= sum(on[p, o.id] for p, o in users))
            # Pieces sharing a site's device stay under the utilisation cap together. (Scaled by
            # `used`: the same for whole plans, but it tells the LP relaxation that a device
            # half-used by fractions of pieces is still a device to pay for.)
            self._enforced(m.add(
                sum(int(math.ceil(o.device_utilisation * MICRO)) * on[p, o.id] for p, o in users)
                <= int(pb.utilisation_cap * MICRO) * self.used[d]
            ), "throughput")
            # ...and fit its memory together.
            self._enforced(m.add(
                sum(int(math.ceil(o.device_memory_mb)) * on[p, o.id] for p, o in users)
                <= int(dev.memory_mb) * self.used[d]
            ), "memory")

    def _cost_terms(self) -> list:
        pb = self.problem
        paid: set[str] = set()
        terms = []
        for p in pb.pieces:
            for o in pb.options[p]:
                if o.tier == "cloud" and (o.pool is None or o.pool not in paid):
                    terms.append(usd(o.monthly_usd) * self.on[p, o.id])
                    if o.pool is not None:
                        paid.add(o.pool)
        terms += [usd(dev.monthly_usd) * self.used[d] for d, dev in pb.devices.items()]
        # a site device's power above idle, in proportion to the busy share each option adds
        terms += [usd(o.power_monthly_usd) * self.on[p, o.id]
                  for p in pb.pieces for o in pb.options[p] if o.power_monthly_usd]
        return terms + egress_terms(self.model, pb, self.at, self.at_in)

    # --- limits: the SLO and the budget a run must meet ---------------------------------------
    def set_limits(self, *, slo_ms: float | None, budget_usd: float | None) -> None:
        """The limits of the SLO and budget constraints; None lifts one. In group mode the
        constraints keep the problem's limits (assumptions decide which hold)."""
        self.slo_ms, self.budget_usd = slo_ms, budget_usd
        end_ub = self.horizon_us if slo_ms is None else min(self.horizon_us, us_floor(slo_ms))
        cost_ub = self.cost_ub if budget_usd is None else min(self.cost_ub, usd(budget_usd))
        if self.groups:
            end_ub, cost_ub = us_floor(self.problem.slo_ms), usd(self.problem.budget_usd)
        _set_upper(self._slo, end_ub)
        _set_upper(self._budget, cost_ub)
        if not self.groups and not self.coverage:
            self._tighten_to(end_ub)

    def _tighten_to(self, end_ub: int) -> None:
        """Bounds the SLO implies (exact, redundant; they speed up the search): an option is
        ruled out when the fastest way to bring its input to where it runs, plus its latency,
        plus the fastest way back to the site, misses the limit; a piece starts between its
        earliest arrival and the latest start of an option that fits. Re-derived on every call,
        so a limit can also be loosened. Not with a site share < 1, where a segment may miss the
        SLO and no piece is bounded by it."""
        pb = self.problem
        for p in pb.pieces:
            earliest, latest = None, None
            for o in pb.options[p]:
                head = self.head_us[p, o.entry]
                earliest = head if earliest is None else min(earliest, head)
                last = end_ub - self.latency_us[p, o.id] - self.tail_us.get((p, o.location), 0)
                fits = head <= last
                if fits:
                    latest = last if latest is None else max(latest, last)
                _set_domain(self.model, self.on[p, o.id], 0, 1 if fits else 0)
            if latest is None:  # nothing fits: every option is ruled out, the run is infeasible
                latest = earliest
            _set_domain(self.model, self.start[p], earliest, max(latest, earliest))

    def allowed(self, piece: str, option_id: str) -> bool:
        """False when the current limits rule the option out before search."""
        var = self.on[piece, option_id]
        return list(self.model.proto.variables[var.index].domain)[-1] == 1

    # --- solve and decode ---------------------------------------------------------------------
    def hint(self, assignment: dict | None) -> None:
        """Start the next run from this plan (piece -> option id); None or {} clears the hint."""
        self.model.clear_hints()
        if not assignment:
            return
        for (piece, option_id), var in self.on.items():
            self.model.add_hint(var, assignment.get(piece) == option_id)

    def run(self, minimise: str, *, time_limit_s: float, seed: int, workers: int,
            enforce: Iterable[str] | None = None) -> ModelRun:
        """Minimise monthly cost ("cost") or latency ("latency") under the current limits. In
        group mode, `enforce` names the constraint groups that must hold this run."""
        # --- objective ---
        self.model.minimize(self.end if minimise == "latency" else self.cost)
        self.model.clear_assumptions()
        enforce = list(enforce or ())
        if enforce:
            self.model.add_assumptions([self.group_literals[g] for g in enforce])
        # --- solve ---
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = float(time_limit_s)
        solver.parameters.random_seed = int(seed)
        solver.parameters.num_workers = int(workers)
        # Interleaved search makes a multi-worker solve repeatable: same seed, same plan (as long
        # as it finishes within the time limit).
        solver.parameters.interleave_search = True
        code = _solve_keeping_sigint(solver, self.model)
        # --- decode ---
        status = _STATUS.get(solver.status_name(code), "unknown")
        stats = {"branches": solver.num_branches, "conflicts": solver.num_conflicts}
        if status not in ("optimal", "feasible"):
            blamed = ()
            if status == "infeasible" and enforce:
                core = set(solver.sufficient_assumptions_for_infeasibility())
                blamed = tuple(g for g in enforce if self.group_literals[g].index in core)
            return ModelRun(status, minimise, None, None, None, solver.wall_time, stats, blamed)
        scale = US_PER_MS if minimise == "latency" else MICRO
        assignment = {
            piece: next(o.id for o in opts if solver.boolean_value(self.on[piece, o.id]))
            for piece, opts in self.problem.options.items()
        }
        return ModelRun(status, minimise, assignment, solver.objective_value / scale,
                        solver.best_objective_bound / scale, solver.wall_time, stats)


def _set_upper(constraint, ub: int) -> None:
    """The right-hand side of a one-variable `x <= ub` constraint."""
    constraint.proto.linear.domain[1] = int(ub)


def _set_domain(model: cp_model.CpModel, var, lo: int, hi: int) -> None:
    domain = model.proto.variables[var.index].domain
    domain.clear()
    domain.extend([lo, hi])


def _solve_keeping_sigint(solver: cp_model.CpSolver, model: cp_model.CpModel) -> int:
    """CP-SAT catches SIGINT during a solve (a first Ctrl-C ends the search with the best plan
    found) and afterwards leaves the process's SIGINT at the system default, from whichever
    thread it ran on: after one plan, Ctrl-C killed `placement app` (exit -2, nothing cleaned
    up) instead of stopping it. On the main thread the solver may catch it and Python's handler
    is put back after; on any other thread (the app's planning workers) it never touches the
    process's handler."""
    main = threading.current_thread() is threading.main_thread()
    solver.parameters.catch_sigint_signal = main
    if not main:
        return solver.solve(model)
    handler = signal.getsignal(signal.SIGINT)
    try:
        return solver.solve(model)
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
