"""The cost-latency Pareto set by an epsilon-constraint sweep over the SLO.

Each step asks for the cheapest plan strictly faster than the last point, then the fastest
plan at that cost (so every point is Pareto-optimal, not just cheapest-at-a-bound). One CP-SAT
model serves the whole sweep: only its SLO and budget limits change (`set_limits`), and the
previous plan is the hint.
"""

from __future__ import annotations

from dataclasses import dataclass

from placement.evaluate import Evaluation, evaluate
from placement.problem import Problem
from placement.solver import PlacementModel


@dataclass
class FrontierPoint:
    assignment: dict  # piece -> option id
    evaluation: Evaluation
    status: str  # optimal | feasible

    @property
    def monthly_usd(self) -> float:
        return self.evaluation.monthly_usd

    @property
    def latency_ms(self) -> float:
        return self.evaluation.latency_ms


def frontier(problem: Problem, *, max_points: int = 20, time_limit_s: float = 10.0, seed: int = 0,
             workers: int = 2, respect_budget: bool = True) -> list[FrontierPoint]:
    """Pareto points from the cheapest plan (any latency) to the fastest, cheapest first."""
    if problem.unplaceable:
        return []
    pm = PlacementModel(problem)
    budget = problem.budget_usd if respect_budget else None
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)
    points: list[FrontierPoint] = []
    bound_ms: float | None = None
    previous: dict | None = None
    while len(points) < max_points:
        pm.set_limits(slo_ms=bound_ms, budget_usd=budget)
        pm.hint(previous)
        cheapest = pm.run("cost", **kw)
        if not cheapest.ok:
            break
        # The fastest plan at this cost: the Pareto point behind this bound.
        pm.set_limits(slo_ms=bound_ms, budget_usd=cheapest.objective_value)
        pm.hint(cheapest.assignment)
        fastest = pm.run("latency", **kw)
        if not fastest.ok:
            fastest = cheapest
        status = "optimal" if cheapest.status == fastest.status == "optimal" else "feasible"
        ev = evaluate(problem, fastest.assignment)
        points.append(FrontierPoint(fastest.assignment, ev, status))
        previous = fastest.assignment
        bound_ms = ev.latency_ms - 0.001  # strictly faster next time (1 us)
        if bound_ms <= 0:
            break
    return prune_dominated(points)


def prune_dominated(points: list[FrontierPoint]) -> list[FrontierPoint]:
    """Keep points no other point beats on both cost and latency (checker's numbers)."""
    kept = []
    for p in points:
        dominated = any(
            (q.monthly_usd <= p.monthly_usd and q.latency_ms <= p.latency_ms)
            and (q.monthly_usd < p.monthly_usd - 0.005 or q.latency_ms < p.latency_ms - 1e-6)
            for q in points if q is not p
        )
        if not dominated:
            kept.append(p)
    return sorted(kept, key=lambda p: (p.monthly_usd, p.latency_ms))


__all__ = ["FrontierPoint", "frontier", "prune_dominated"]
