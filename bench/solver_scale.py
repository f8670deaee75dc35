"""Solve time and status of the CP-SAT placement model on synthetic instances.

    python bench/solver_scale.py [--time-limit 30] [--seeds 3] [--sizes 10x50,50x150,100x300]
                                 [--fleet-sizes 10x50x3,20x100x4]

Sizes are models x hardware options (offers a piece may use: cloud offers + edge devices);
each cloud offer also expands into replica-count options. Fleet sizes add the number of
segments. Prints one row per size with the solve status and the gap; the last rows are mixed
fleets (every model placed per segment, pools shared by any set of segments). An empty list
(`--fleet-sizes ""`) skips that kind.
"""

from __future__ import annotations

import argparse
import statistics
import time

from placement.evaluate import evaluate
from placement.problem import build_problem
from placement.solver import solve
from placement.synthetic import synthetic_instance

SIZES = "10x50,50x150,100x300"
# Mixed fleets: every model is placed once per segment, and a cloud pool may serve any set of
# segments, so options grow with 2^(segments-1) per segment.
# (The segments' devices are fixed, so their SLO is looser than the uniform rows', where the
# fastest device can be bought everywhere.)
FLEET_SIZES = "10x50x3,20x100x4"


def parse_sizes(text: str, parts: int) -> list[tuple[int, int, int]]:
    """"10x50,50x150" -> [(10, 50, 0), (50, 150, 0)]; with parts=3, "10x50x3" -> (10, 50, 3)."""
    sizes = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        numbers = item.split("x")
        if len(numbers) != parts or not all(n.isdigit() and int(n) > 0 for n in numbers):
            shape = "MODELSxHARDWARE" + ("xSEGMENTS" if parts == 3 else "")
            raise argparse.ArgumentTypeError(f"{item!r}: expected {shape}, e.g. {'10x50x3' if parts == 3 else '10x50'}")
        if int(numbers[1]) <= 4:
            raise argparse.ArgumentTypeError(f"{item!r}: hardware counts the 4 edge devices too; use more than 4")
        sizes.append((int(numbers[0]), int(numbers[1]), int(numbers[2]) if parts == 3 else 0))
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=lambda s: parse_sizes(s, 2), default=parse_sizes(SIZES, 2),
                    help=f"uniform fleets, MODELSxHARDWARE,... (default {SIZES})")
    ap.add_argument("--fleet-sizes", type=lambda s: parse_sizes(s, 3), default=parse_sizes(FLEET_SIZES, 3),
                    help=f"mixed fleets, MODELSxHARDWARExSEGMENTS,... (default {FLEET_SIZES})")
    args = ap.parse_args()
    print(f"{'models x hw':>12} {'segments':>8} {'options':>8} {'build s':>8} {'solve s (median, max)':>22} "
          f"{'status':>18} {'gap':>6} {'checker':>8}")
    for pieces, hardware, segments in args.sizes + args.fleet_sizes:
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
