"""The Markdown summary: a renderer over `placement.rows`, which computes every number."""

from __future__ import annotations

from placement.plan import Plan
from placement.rows import (  # noqa: F401  (re-exported: older callers import them from here)
    baseline_rows,
    bom_rows,
    cost_rows,
    frontier_rows,
    headline,
    path_rows,
    paths,
    plan_rows,
    pricing_model_rows,
    provenance_rows,
    route_rows,
    segment_rows,
    slack_rows,
    source_label,
    where,
)


def _usd(x: float | None) -> str:
    return "—" if x is None else f"${x:,.2f}"


def markdown_summary(plan: Plan) -> str:
    h = headline(plan)
    lines = [f"# Placement plan: {plan.application}", ""]
    lines += [f"- **Status**: {h['status_label']}; objective {h['objective']}; solved in {h['wall_time_s']:.2f} s "
              f"(time limit {h['time_limit_s']:g} s, seed {h['seed']}, {h['workers']} workers, {h['options']} options)"]
    if plan.latency:
        ok = "meets" if h["meets_slo"] else "MISSES"
        on_share = "" if h["min_site_share"] >= 1 else (
            f" on {h['min_site_share']:.0%} of sites (met on {h['site_share_meeting_slo']:.0%})")
        lines.append(f"- **Latency**: p{h['percentile']} {h['latency_ms']:.1f} ms, "
                     f"{ok} the SLO of {h['slo_ms']:g} ms{on_share}")
    if plan.costs:
        lines.append(f"- **Cost**: {_usd(h['monthly_usd'])}/month ({h['pricing_model']}), "
                     f"{_usd(h['annual_usd'])}/year, {_usd(h['usd_per_million_requests'])} per million requests; "
                     f"budget {_usd(h['budget_usd'])}")
    lines.append(f"- **Prices** as of {h['price_date']}; TVM {h['tvm_version'] or 'n/a'}; "
                 f"spec sha256 {h['spec_sha256'][:12]}")
    if plan.violations:
        lines += ["", "**Not feasible:**", ""] + [f"- {v}" for v in plan.violations]
    if plan.explanation:
        lines += ["", "## Why there is no plan", ""] + [f"- {m}" for m in plan.explanation.messages]
    if not plan.placements:
        return "\n".join(lines) + "\n"

    lines += ["", "## Placement", "",
              "| piece | where | replicas | runtime | p95 ms | compute + transfer + wait ms | latency from | $/month |",
              "|---|---|---|---|---:|---:|---|---:|"]
    for r in plan_rows(plan):
        lines.append(f"| {r['piece']} | {r['where']} | {r['replicas']} | {r['runtime']} | "
                     f"{r['p95_ms']:.2f} | {r['parts']} | {r['latency_source']} | "
                     f"{_usd(r['monthly_usd']) if r['monthly_usd'] is not None else r['cost_note']} |")

    if plan.segments:
        lines += ["", "## Fleet segments", "",
                  "| segment | share | sites | device | p95 ms | meets SLO |", "|---|---:|---:|---|---:|---|"]
        for seg in segment_rows(plan):
            owned = " (owned)" if seg["owned"] else ""
            lines.append(f"| {seg['segment']} | {seg['share']:.0%} | {seg['sites']} | {seg['device']}{owned} | "
                         f"{seg['latency_ms']:.1f} | {'yes' if seg['meets_slo'] else 'NO'} |")

    lines += ["", "## Bill of materials", "", "| item | quantity | unit price | source |", "|---|---:|---:|---|"]
    for b in bom_rows(plan):
        if b["tier"] == "cloud":
            lines.append(f"| {b['item']} ({b['serves']}) | {b['quantity']} | {_usd(b['unit_usd'])}/h | {b['source']} |")
        else:
            lines.append(f"| {b['item']} (one per site) | {b['quantity']:g} | "
                         f"{_usd(b['unit_usd'])}/month amortised | {b['source']} |")

    lines += ["", "## Monthly cost by item", "", "| kind | item | quantity | $/month | source |",
              "|---|---|---:|---:|---|"]
    for c in cost_rows(plan):
        lines.append(f"| {c['kind']} | {c['item']} | {c['quantity']:,.4g} {c['unit']} | "
                     f"{_usd(c['monthly_usd'])} | {c['source']} |")
    lines.append(f"| **total** | | | **{_usd(h['monthly_usd'])}** | |")
    alt = ", ".join(f"{r['pricing_model']}: {_usd(r['monthly_usd'])}" for r in pricing_model_rows(plan))
    lines += ["", f"The same placement at other pricing models: {alt} (— where an offer has no such price)."]

    lines += ["", "## Predicted latency per path", "",
              "| path | p95 ms | compute ms | transfer ms | wait ms |", "|---|---:|---:|---:|---:|"]
    for r in path_rows(plan):
        lines.append(f"| {r['path']} | {r['latency_ms']:.2f} | {r['compute_ms']:.2f} | {r['transfer_ms']:.2f} | "
                     f"{r['wait_ms']:.2f} |")
    lines += ["", "| route | bytes/request | from | to | transfer ms |", "|---|---:|---|---|---:|"]
    for r in route_rows(plan):
        lines.append(f"| {r['route']} | {r['bytes_per_request']:,.0f} | {r['location_from']} | "
                     f"{r['location_to']} | {r['transfer_ms']:.2f} |")

    if plan.baselines:
        lines += ["", "## Against simple placements", "", "| baseline | $/month | p95 ms | feasible | note |",
                  "|---|---:|---:|---|---|"]
        for b in baseline_rows(plan):
            if b["this_plan"]:
                lines.append(f"| **this plan** | **{_usd(b['monthly_usd'])}** | **{b['latency_ms']:.1f}** | yes | |")
                continue
            lat = "—" if b["latency_ms"] is None else f"{b['latency_ms']:.1f}"
            lines.append(f"| {b['name']} | {_usd(b['monthly_usd'])} | {lat} | {'yes' if b['feasible'] else 'no'} | {b['note']} |")
    if plan.constraints:
        lines += ["", "## Constraints and slack", "", "| constraint | limit | value | slack | binding | detail |",
                  "|---|---:|---:|---:|---|---|"]
        for c in slack_rows(plan):
            lines.append(f"| {c['constraint']} | {c['limit']:,.4g} {c['unit']} | {c['value']:,.4g} | {c['slack']:,.4g} | "
                         f"{'yes' if c['binding'] else 'no'} | {c['detail']} |")

    lines += ["", "## Where the numbers come from", ""]
    for r in provenance_rows(plan):
        alts = ", ".join(f"{k} {v:.2f} ms" for k, v in r["runtimes_ms"].items())
        lines.append(f"- {r['piece']} on {r['hardware']}: {r['latency_source']} "
                     f"(runtimes profiled: {alts}); price: {r['price_source']}, {r['price_date']}")
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(plan.provenance.profile_sources.items()))
    lines.append(f"- placed latencies by source: {counts}")
    if plan.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"
