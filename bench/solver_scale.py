"""Solve time and status of the CP-SAT placement model on synthetic instances.

    python bench/solver_scale.py [--time-limit 30] [--seeds 3]

Sizes are models x hardware options (offers a piece may use: cloud offers + edge devices);
each cloud offer also expands into replica-count options. Prints one row per size; the last rows
are mixed fleets (every model placed per segment, pools shared by any set of segments).
"""

from __future__ import annotations

import argparse
import statistics
import time

from placement.evaluate import evaluate
from placement.problem import build_problem
from placement.solver import solve
from placement.synthetic import synthetic_instance

SIZES = [(10, 50, 0), (50, 150, 0), (100, 300, 0)]
# Mixed fleets: every model is placed once per segment, and a cloud pool may serve any set of
# segments, so options grow with 2^(segments-1) per segment.
# (The segments' devices are fixed, so their SLO is looser than the uniform rows', where the
# fastest device can be bought everywhere.)
FLEET_SIZES = [(10, 50, 3), (20, 100, 4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(f"{'models x hw':>12} {'segments':>8} {'options':>8} {'build s':>8} {'solve s (median, max)':>22} "
          f"{'status':>18} {'gap':>6} {'checker':>8}")
    for pieces, hardware, segments in SIZES + FLEET_SIZES:
        times, statuses, gaps, checks, builds, n_opts = [], [], [], [], [], 0
        for seed in range(args.seeds):
            inst = synthetic_instance(pieces, hardware - 4, 4, seed=seed, regions=3,
                                      slo_ms=30.0 * pieces ** 0.5 + (150 if not segments else 300),
                                      fleet_segments=segments)
            t0 = time.perf_counter()
            problem = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                                    egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
            builds.append(time.perf_counter() - t0)
            n_opts = sum(len(v) for v in problem.options.values())
            t0 = time.perf_counter()
            result = solve(problem, time_limit_s=args.time_limit, seed=0, workers=args.workers)
            times.append(time.perf_counter() - t0)
            statuses.append(result.status)
            gaps.append(result.gap or 0.0)
            if result.assignment:
                checks.append(evaluate(problem, result.assignment).feasible)
        status = ",".join(f"{s}:{statuses.count(s)}" for s in sorted(set(statuses)))
        print(f"{pieces:>5} x {hardware:<4} {segments or '-':>8} {n_opts:>8} {statistics.median(builds):>8.2f} "
              f"{statistics.median(times):>10.2f}, {max(times):>9.2f} {status:>18} "
              f"{max(gaps):>6.2%} {('ok' if all(checks) else 'FAIL'):>8}")


if __name__ == "__main__":
    main()
