"""`solve`: the cheapest (or fastest) placement meeting the SLO and the budget, as a
`SolveResult`. Pure: a `Problem` in, a result out; never raises for an infeasible problem."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from placement.problem import Problem
from placement.solver.model import ModelRun, PlacementModel, relative_gap

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
    """Cheapest (or, with objective="latency", fastest, then cheapest among the fastest)
    placement meeting the SLO and the budget (the problem's, unless given). Pass `model` to
    re-solve a built model."""
    n_options = problem.num_options
    settings = dict(workers=workers, seed=seed, time_limit_s=time_limit_s, num_options=n_options)
    if problem.unplaceable:
        piece, why = next(iter(problem.unplaceable.items()))
        return SolveResult("infeasible", None, objective, None, None, None, 0.0,
                           reason=f"{piece}: {why}", **settings)
    hint_s = 0.0
    if hint is None and problem.fleet and len(problem.lanes) > 1:
        hint, hint_s = _fleet_hint(problem, objective, time_limit_s / 4, seed, workers)
    pm = model or PlacementModel(problem)
    slo = problem.slo_ms if slo_ms is None else slo_ms
    budget = problem.budget_usd if budget_usd is None else budget_usd
    pm.set_limits(slo_ms=slo, budget_usd=budget)
    pm.hint(hint)
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)

    if objective != "latency":
        cheapest = pm.run("cost", **kw)
        return _result(cheapest, objective, cheapest.wall_time_s + hint_s, settings)
    # Fastest first, then the cheapest among the fastest.
    fastest = pm.run("latency", **kw)
    if not fastest.ok:
        return _result(fastest, objective, fastest.wall_time_s + hint_s, settings)
    pm.set_limits(slo_ms=fastest.objective_value, budget_usd=budget)
    pm.hint(fastest.assignment)
    cheapest = pm.run("cost", **kw)
    pm.set_limits(slo_ms=slo, budget_usd=budget)
    result = _result(cheapest, objective, cheapest.wall_time_s + fastest.wall_time_s + hint_s, settings)
    if cheapest.ok:
        result.objective_value = fastest.objective_value
        result.best_bound = fastest.best_bound
        result.gap = relative_gap(result.objective_value, result.best_bound)
        if fastest.status != "optimal" and result.status == "optimal":
            result.status = "feasible"
    return result


def _result(run: ModelRun, objective: str, wall_time_s: float, settings: dict) -> SolveResult:
    if run.ok:
        reason = ""
    elif run.status == "infeasible":
        reason = "no placement meets the SLO, budget, memory and utilisation constraints"
    else:
        reason = "no solution found within the time limit"
    return SolveResult(status=run.status, assignment=run.assignment, objective=objective,
                       objective_value=run.objective_value, best_bound=run.best_bound, gap=run.gap,
                       wall_time_s=wall_time_s, reason=reason, stats=dict(run.stats), **settings)


def _fleet_hint(problem: Problem, objective: str, time_limit_s: float, seed: int,
                workers: int) -> tuple[dict | None, float]:
    """A first plan for a mixed fleet, from the much smaller problem where a cloud pool serves
    every segment or none: CP-SAT finds a first solution of the full model slowly (thousands of
    pool options), and this one is often close. Used only as a hint; never changes the optimum."""
    every = len(problem.lanes)
    options = {p: tuple(o for o in opts if o.pool is None or len(o.pool_segments) == every)
               for p, opts in problem.options.items()}
    if any(not opts for opts in options.values()):
        return None, 0.0
    small = dataclasses.replace(problem, options=options)
    result = solve(small, objective=objective, time_limit_s=time_limit_s, seed=seed, workers=workers,
                   hint={})
    return result.assignment, result.wall_time_s
