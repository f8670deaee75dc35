"""Warm re-plan time of the demo against a plan from scratch, side by side in one run.

An app re-plans on every slider move; the Workspace keeps the resolved models, I/O bytes,
profiles and built problems, so a re-plan pays only for what its override changes. Goal: the
median warm re-plan under 0.5 s. Run on a quiet machine (a loaded one reads up to 4x slow):

    python bench/replan.py [--spec SPEC] [--analyse]

The first run profiles the demo (about 30 s on 2 cores) to warm the profile cache; the timings
below are taken after that.
"""

from __future__ import annotations

import argparse
import statistics
import time

from placement import api


def overrides(spec) -> list[api.Overrides]:
    slo, budget = spec.slo.latency_ms, spec.monthly_budget_usd
    sites, rate = spec.load.sites, spec.load.rate_per_site_rps
    up = spec.network.uplink_mbps
    moves = [api.Overrides(slo_ms=slo * f) for f in (0.5, 0.7, 0.9, 1.2, 2.0)]
    moves += [api.Overrides(budget_usd=budget * f) for f in (0.1, 0.5, 2.0)]
    moves += [api.Overrides(sites=max(1, int(sites * f))) for f in (0.5, 2.0, 5.0)]
    moves += [api.Overrides(rate_per_site_rps=rate * f) for f in (0.5, 2.0, 4.0)]
    moves += [api.Overrides(uplink_mbps=up * f) for f in (0.25, 0.5, 4.0)]
    moves += [api.Overrides(pricing_model=m) for m in ("spot", "reserved-1y", "reserved-3y")]
    return moves[:20]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(api.demo_spec_path()))
    parser.add_argument("--analyse", action="store_true",
                        help="also compute baselines and slack per plan (what the CLI prints)")
    args = parser.parse_args()

    ws = api.Workspace.open(args.spec)
    ws.profile()  # warm the profile cache (minutes cold, about a second warm)

    started = time.perf_counter()
    scratch = api.Workspace.open(args.spec)
    scratch.profile()
    scratch.plan(analyse=args.analyse)
    scratch_s = time.perf_counter() - started

    ws.plan(analyse=args.analyse)  # the page's first plan
    times, statuses = [], []
    for move in overrides(ws.spec):
        t0 = time.perf_counter()
        outcome = ws.plan(move, analyse=args.analyse)
        times.append(time.perf_counter() - t0)
        statuses.append(outcome.plan.status)
    warm = statistics.median(times)
    print(f"spec: {args.spec}  (analyse={args.analyse}; {len(times)} overrides: "
          f"{', '.join(f'{s}:{statuses.count(s)}' for s in sorted(set(statuses)))})")
    print(f"{'what':<44}{'seconds':>10}")
    print(f"{'from scratch (open, warm profile cache, plan)':<44}{scratch_s:>10.3f}")
    print(f"{'warm re-plan, median of 20 overrides':<44}{warm:>10.3f}")
    print(f"{'warm re-plan, max':<44}{max(times):>10.3f}")
    print(f"{'ratio scratch / warm median':<44}{scratch_s / warm:>10.1f}")


if __name__ == "__main__":
    main()
