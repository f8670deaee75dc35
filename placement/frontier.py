"""The cost-latency Pareto set by an epsilon-constraint search over the SLO.

The cheapest and the fastest plans first, then points spread over the latency range between
them. Each probe asks for the cheapest plan within a latency bound, then the fastest plan at
that cost (so every point is Pareto-optimal, not just cheapest-at-a-bound). One CP-SAT
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
    """Pareto points from the cheapest plan (any latency) to the fastest, cheapest first, at
    most `max_points`. The two extremes come first (the cheapest plan, then the fastest one
    when a second point is allowed); the rest are spread over the latency range between them:
    the widest open gap is probed at its middle (the cheapest plan at most that fast), and a
    gap where the middle finds nothing new at its slow end (strictly faster than the slower
    point), so with enough points every Pareto point is found."""
    if problem.unplaceable or max_points < 1:
        return []
    pm = PlacementModel(problem)
    budget = problem.budget_usd if respect_budget else None
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)
    hint: list[dict | None] = [None]

    def pareto_point(bound_ms: float | None, minimise_first: str = "cost") -> FrontierPoint | None:
        """The cheapest plan within `bound_ms`, then the fastest at that cost (or, for the
        fast end, the fastest plan, then the cheapest at that latency)."""
        pm.set_limits(slo_ms=bound_ms, budget_usd=budget)
        pm.hint(hint[0])
        first = pm.run(minimise_first, **kw)
        if not first.ok:
            return None
        if minimise_first == "cost":
            pm.set_limits(slo_ms=bound_ms, budget_usd=first.objective_value)
            then = "latency"
        else:
            pm.set_limits(slo_ms=first.objective_value + 0.0005, budget_usd=budget)
            then = "cost"
        pm.hint(first.assignment)
        second = pm.run(then, **kw)
        if not second.ok:
            second = first
        status = "optimal" if first.status == second.status == "optimal" else "feasible"
        hint[0] = second.assignment
        return FrontierPoint(second.assignment, evaluate(problem, second.assignment), status)

    cheapest = pareto_point(None)
    if cheapest is None:
        return []
    points = [cheapest]
    if max_points >= 2:
        fastest = pareto_point(None, "latency")
        if fastest is not None and _new(fastest, points):
            points.append(fastest)
    # Open gaps between neighbours (by latency), each with the probes still to try.
    gaps: dict[tuple, list[str]] = {}
    for _ in range(4 * max_points + 4):
        if len(points) >= max_points:
            break
        ordered = sorted(points, key=lambda p: p.latency_ms)
        live = []
        for fast, slow in zip(ordered, ordered[1:]):
            key = (_key(fast), _key(slow))
            gaps.setdefault(key, ["middle", "slow end"])
            if gaps[key] and slow.latency_ms - fast.latency_ms > 0.002:
                live.append((slow.latency_ms - fast.latency_ms, key, fast, slow))
        if not live:
            break
        _, key, fast, slow = max(live, key=lambda g: g[0])
        probe = gaps[key].pop(0)
        bound = (fast.latency_ms + slow.latency_ms) / 2 if probe == "middle" else slow.latency_ms - 0.001
        found = pareto_point(bound)
        if found is not None and _new(found, points):
            points.append(found)
            gaps[key] = []  # split into two new gaps
    return prune_dominated(points)


def _key(p: FrontierPoint) -> tuple:
    return (round(p.monthly_usd, 2), round(p.latency_ms, 3))


def _new(p: FrontierPoint, points: list[FrontierPoint]) -> bool:
    return all(abs(p.monthly_usd - q.monthly_usd) > 0.005 or abs(p.latency_ms - q.latency_ms) > 1e-6
               for q in points)


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
