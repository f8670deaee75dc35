"""The checker's half for co-located pools (placement/problem/colocate.py): each pool the plan
uses, recomputed from its members' chosen options alone (their streams, memory and the pool's
replica count), not from the numbers the pool was built with: every member runs in it, their p50
loads summed per replica stay under the cap, their memory fits the instance's, and each one's
wait over their merged load (jobs of pieces fed by the same nodes arriving together, grouped from
the problem's flows), which no member's option may understate. The pool's cost is billed once by
`placement.evaluate`, which calls this."""

from __future__ import annotations

import math

from placement.problem import Option, Problem, arrival_groups, pool_waits_ms
from placement.queueing import Stream, merged_arrival_scv

_TOLERANCE_MS = 1e-6


def check_colocated_pools(problem: Problem, chosen: dict[str, Option]) -> tuple[list[str], dict[str, float]]:
    """Violations, and each co-located piece's wait recomputed over its pool's merged load."""
    placed: dict[str, list[str]] = {}
    for piece, opt in chosen.items():
        if opt.pool_pieces:
            placed.setdefault(opt.pool, []).append(piece)
    violations: list[str] = []
    waits: dict[str, float] = {}
    inputs_of: dict[str, set] = {}
    for flow in problem.flows:
        inputs_of.setdefault(flow.target, set()).add(flow.source)
    for pieces in placed.values():
        members = [chosen[p] for p in pieces]
        first = members[0]
        label = f"the pool of {'+'.join(first.pool_pieces)} on {first.offer} (x{first.replicas})"
        missing = [p for p in first.pool_pieces if p not in pieces]
        if missing:
            violations.append(f"pool: {label} runs its pieces together, but {', '.join(missing)} runs elsewhere")
        # utilisation follows p50 (as for every pool); an option keeps the mean, p50 x sqrt(1 + cs²)
        load = sum(o.arrival_rps * o.service_ms / math.sqrt(1.0 + o.service_scv) for o in members) / 1000.0
        if load / first.replicas > problem.utilisation_cap + 1e-9:
            violations.append(f"cloud utilisation: {label} at {load / first.replicas:.0%} "
                              f"> cap {problem.utilisation_cap:.0%}")
        memory, limit = sum(o.memory_mb for o in members), min(o.pool_memory_mb for o in members)
        if memory > limit + 1e-6:
            violations.append(f"cloud memory: {label} needs {memory:.0f} MB > {limit:.0f} MB")
        recomputed = pool_waits_ms(
            first.replicas, [Stream(o.arrival_rps, o.service_ms, o.service_scv) for o in members],
            [o.compute_ms_p95 for o in members], arrival_groups(pieces, inputs_of), problem.slo_percentile,
            merged_arrival_scv(problem.arrival_scv, problem.sites))
        for piece, o, wait in zip(pieces, members, recomputed):
            waits[piece] = wait
            if wait > o.wait_ms + _TOLERANCE_MS * max(1.0, wait):
                violations.append(f"wait: {piece} waits {wait:.3f} ms in {label} (merged load), "
                                  f"its option says {o.wait_ms:.3f} ms")
    return violations, waits
