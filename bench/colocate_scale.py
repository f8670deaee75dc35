"""Co-located pools on synthetic instances: options, build and solve time, status and cost with
co-location off, and on at several `solver.colocate_max_pools` caps.

    python bench/colocate_scale.py [--caps 400,1000,100000] [--time-limit 30]

Rows: ten and twelve tiny models (a site or two: every subset fits one replica), ten models at
100 sites with a binding SLO, seven models at 10 sites. The numbers quoted in
placement/problem/colocate.py's docstring come from this script on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import time

from placement.problem import build_problem
from placement.solver import solve
from placement.synthetic import synthetic_instance

CASES = (  # models, cloud offers, edge devices, sites, seed, SLO ms (None: the instance's own)
    (10, 15, 0, 1, 5, 2000.0),
    (12, 15, 0, 2, 5, 2000.0),
    (10, 15, 2, 100, 11, None),
    (7, 12, 2, 10, 300, None),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--caps", default="400,1000,100000", help="colocate_max_pools values, comma-separated")
    ap.add_argument("--time-limit", type=float, default=30.0)
    args = ap.parse_args()
    caps = [int(c) for c in args.caps.split(",") if c]
    print(f"{'models x offers':>16} {'sites':>5} {'co-location':>12} {'options':>8} {'build s':>8} "
          f"{'solve s':>8} {'status':>10} {'$/month':>10}")
    for models, offers, edge, sites, seed, slo in CASES:
        inst = synthetic_instance(models, offers, edge, seed=seed, regions=3, sites=sites, slo_ms=slo)
        for label, update in [("off", {"colocate": False})] + [(f"cap {c}", {"colocate_max_pools": c}) for c in caps]:
            spec = inst.spec.model_copy(update={"solver": inst.spec.solver.model_copy(update=update)})
            t0 = time.perf_counter()
            problem = build_problem(spec, inst.profiles, inst.offers, inst.io_bytes,
                                    egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
            built = time.perf_counter() - t0
            result = solve(problem, time_limit_s=args.time_limit)
            cost = "—" if result.objective_value is None else f"{result.objective_value:,.2f}"
            print(f"{models:>7} x {offers:<6} {sites:>5} {label:>12} {problem.num_options:>8} {built:>8.1f} "
                  f"{result.wall_time_s:>8.1f} {result.status:>10} {cost:>10}", flush=True)


if __name__ == "__main__":
    main()
