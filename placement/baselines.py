"""Simple placements a team might pick by hand, priced by the same checker, so a plan shows what
the optimiser saved: all-cloud, all-edge, the best single edge/cloud cut of the pipeline
(Neurosurgeon-style) and a greedy per-stage allocation (InferLine-style)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from placement.evaluate import Evaluation, evaluate
from placement.problem import Problem
from placement.solver import solve


@dataclass
class BaselineResult:
    name: str
    evaluation: Evaluation | None
    note: str = ""

    @property
    def feasible(self) -> bool:
        return self.evaluation is not None and self.evaluation.feasible


def _restricted(problem: Problem, keep) -> Problem | None:
    options = {p: tuple(o for o in opts if keep(p, o)) for p, opts in problem.options.items()}
    if any(not opts for opts in options.values()):
        return None
    return dataclasses.replace(problem, options=options)


def _cheapest(problem: Problem | None, **kw) -> Evaluation | None:
    if problem is None:
        return None
    result = solve(problem, **kw)
    return evaluate(problem, result.assignment) if result.assignment else None


def all_cloud(problem: Problem, **kw) -> BaselineResult:
    ev = _cheapest(_restricted(problem, lambda p, o: o.tier == "cloud" and o.cut is None), **kw)
    return BaselineResult("all-cloud", ev, "" if ev else "no all-cloud plan meets the constraints")


def all_edge(problem: Problem, **kw) -> BaselineResult:
    ev = _cheapest(_restricted(problem, lambda p, o: o.tier == "edge"), **kw)
    return BaselineResult("all-edge", ev, "" if ev else "no all-edge plan meets the constraints")


def best_single_cut(problem: Problem, **kw) -> BaselineResult:
    """The first k models (dataflow order) at the edge, the rest in the cloud; the best k (the
    same k in every fleet segment)."""
    best: tuple[int, Evaluation] | None = None
    order = list(dict.fromkeys(problem.piece_model.get(p, p) for p in problem.pieces))
    for k in range(len(order) + 1):
        head = set(order[:k])
        sub = _restricted(problem, lambda p, o, head=head: o.cut is None and (o.tier == "edge") == (
            problem.piece_model.get(p, p) in head))
        ev = _cheapest(sub, **kw)
        if ev is not None and (best is None or ev.monthly_usd < best[1].monthly_usd):
            best = (k, ev)
    if best is None:
        return BaselineResult("best single cut", None, "no cut of the pipeline meets the constraints")
    k, ev = best
    note = (f"edge runs {', '.join(order[:k])}" if k else "everything in the cloud") + (
        "" if k in (0, len(order)) else f"; cloud runs {', '.join(order[k:])}")
    return BaselineResult("best single cut", ev, note)


def best_cut_per_model(problem: Problem, **kw) -> BaselineResult | None:
    """Neurosurgeon-style: every model that can be split runs split (its best cut), the rest
    wherever is cheapest. None when no model has split options."""
    splittable = {p for p, opts in problem.options.items() if any(o.cut for o in opts)}
    if not splittable:
        return None
    ev = _cheapest(_restricted(problem, lambda p, o: p not in splittable or o.cut is not None), **kw)
    return BaselineResult("best cut per model", ev, f"split: {', '.join(sorted(splittable))}"
                          if ev else "no all-split plan meets the constraints")


def greedy_per_stage(problem: Problem) -> BaselineResult:
    """Split the SLO over the pieces in proportion to their fastest option, then buy the cheapest
    option of each piece that fits its share (transfers ignored while choosing, as a per-stage
    planner does; the checker then prices the real end-to-end latency). In a mixed fleet each
    segment provisions its own pools, as separate per-segment planning would."""
    fastest = {p: min(o.latency_ms for o in opts) for p, opts in problem.options.items()}
    total = sum(fastest.values()) or 1.0
    choice = {}
    for piece, opts in problem.options.items():
        share = problem.slo_ms * fastest[piece] / total
        own = [o for o in opts if o.pool is None or o.pool_segments == (problem.piece_lane[piece],)]
        fits = [o for o in own if o.latency_ms <= share]
        pool = fits or [min(own, key=lambda o: o.latency_ms)]
        choice[piece] = min(pool, key=lambda o: (o.monthly_usd + _device_cost(problem, o), o.latency_ms))
    ev = evaluate(problem, choice)
    return BaselineResult("greedy per stage", ev, "SLO split in proportion to each piece's fastest option")


def _device_cost(problem: Problem, option) -> float:
    if option.device_offer is None:
        return 0.0
    return problem.devices[option.device_offer].monthly_usd + option.power_monthly_usd


def baselines(problem: Problem, *, time_limit_s: float = 10.0, seed: int = 0, workers: int = 2):
    if problem.unplaceable:
        return []
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)
    found = [all_cloud(problem, **kw), all_edge(problem, **kw), best_single_cut(problem, **kw),
             best_cut_per_model(problem, **kw), greedy_per_stage(problem)]
    return [b for b in found if b is not None]
