"""Reports rendered from a `Plan` alone, so a plan.json from last month renders the same today."""

from __future__ import annotations

from placement.plan import Plan


def source_label(source: str, error_band: float | None) -> str:
    if source == "estimated":
        return f"estimated ±{error_band:.0%}" if error_band else "estimated"
    return source


def where(p) -> str:
    if p.tier == "edge":
        return f"edge {p.instance_type}"
    cloud = f"{p.provider} {p.region} {p.instance_type}"
    if p.head is not None:
        return f"split at {p.cut}: head on edge {p.head.device}, tail on {cloud}"
    return cloud


def plan_rows(plan: Plan) -> list[dict]:
    """One row per piece, in the words of the plan table (CLI, app and Markdown share it)."""
    rows = []
    pool_owner: dict[tuple[str, str], str] = {}  # a shared pool's cost shows on its first row
    for p in plan.placements:
        shared = p.tier == "cloud" and len(p.pool_segments) > 1
        first = pool_owner.setdefault((p.model, p.option), p.piece) if shared else p.piece
        cost_note = ("devices below" if p.tier == "edge" else
                     f"same pool as {first}" if first != p.piece else "")
        rows.append({
            "piece": p.piece,
            "where": where(p),
            "replicas": (f"{p.replicas}" + (f" shared by {'+'.join(p.pool_segments)}"
                                            if len(p.pool_segments) > 1 else ""))
            if p.tier == "cloud" else f"1/site x {p.devices}",
            "runtime": p.runtime,
            "p95_ms": p.latency_ms_p95,
            "latency_source": source_label(p.latency_source, p.error_band),
            "monthly_usd": None if cost_note else p.monthly_usd,
            "cost_note": cost_note,
        })
    return rows


def paths(plan: Plan) -> list[tuple[list[str], float]]:
    """Every source -> sink path with its predicted latency (piece p95s + transfers)."""
    succ: dict[str, list] = {}
    for r in plan.routes:
        succ.setdefault(r.source, []).append(r)
    lat = {p.piece: p.latency_ms_p95 for p in plan.placements}
    out: list[tuple[list[str], float]] = []

    def walk(node, path, total):
        if node == "sink":
            out.append((path, total))
            return
        if len(out) >= 50:
            return
        for r in succ.get(node, []):
            walk(r.target, path + [r.target], total + r.transfer_ms + lat.get(r.target, 0.0))

    walk("source", ["source"], 0.0)
    return sorted(out, key=lambda x: -x[1])


def frontier_rows(plans: list[Plan]) -> list[dict]:
    """One row per Pareto point, cheapest first, with what each step buys: the dollars per month
    paid for every millisecond it saves over the cheaper point before it. An exact frontier can
    hold a step that saves a few microseconds for hundreds of dollars; its latency is printed with
    the decimals that tell it from its neighbour, and its price per millisecond shows what it is."""
    lats = [p.latency.p95_ms for p in plans]
    decimals = 1
    while decimals < 3 and len({f"{x:.{decimals}f}" for x in lats}) < len(set(lats)):
        decimals += 1
    rows = []
    for i, p in enumerate(plans):
        step = None
        if i > 0 and lats[i - 1] > lats[i]:
            step = (p.costs.monthly_usd - plans[i - 1].costs.monthly_usd) / (lats[i - 1] - lats[i])
        rows.append({"monthly_usd": p.costs.monthly_usd, "latency_ms": lats[i],
                     "latency_label": f"{lats[i]:.{decimals}f}", "usd_per_ms_saved": step,
                     "latency_from": ", ".join(sorted(p.provenance.profile_sources)),
                     "price_date": p.provenance.price_date})
    return rows


def _usd(x: float | None) -> str:
    return "—" if x is None else f"${x:,.2f}"


def markdown_summary(plan: Plan) -> str:
    lines = [f"# Placement plan: {plan.application}", ""]
    s = plan.solver
    status = s.status + (f" (gap {s.gap:.2%})" if s.status == "feasible" and s.gap else "")
    lines += [f"- **Status**: {status}; objective {s.objective}; solved in {s.wall_time_s:.2f} s "
              f"(time limit {s.time_limit_s:g} s, seed {s.seed}, {s.workers} workers, {s.options} options)"]
    if plan.latency:
        lat = plan.latency
        ok = "meets" if lat.p95_ms <= lat.slo_ms else "MISSES"
        on_share = "" if lat.min_site_share >= 1 else (
            f" on {lat.min_site_share:.0%} of sites (met on {lat.site_share_meeting_slo:.0%})")
        lines.append(f"- **Latency**: p{lat.percentile} {lat.p95_ms:.1f} ms, "
                     f"{ok} the SLO of {lat.slo_ms:g} ms{on_share}")
    if plan.costs:
        c = plan.costs
        lines.append(f"- **Cost**: {_usd(c.monthly_usd)}/month ({c.pricing_model}), "
                     f"{_usd(c.annual_usd)}/year, {_usd(c.usd_per_million_requests)} per million requests; "
                     f"budget {_usd(plan.budget_usd)}")
    lines.append(f"- **Prices** as of {plan.provenance.price_date}; TVM {plan.provenance.tvm_version or 'n/a'}; "
                 f"spec sha256 {plan.provenance.spec_sha256[:12]}")
    if plan.violations:
        lines += ["", "**Not feasible:**", ""] + [f"- {v}" for v in plan.violations]
    if plan.explanation:
        lines += ["", "## Why there is no plan", ""] + [f"- {m}" for m in plan.explanation.messages]
    if not plan.placements:
        return "\n".join(lines) + "\n"

    lines += ["", "## Placement", "",
              "| piece | where | replicas | runtime | p95 ms | latency from | $/month |",
              "|---|---|---|---|---:|---|---:|"]
    for r in plan_rows(plan):
        lines.append(f"| {r['piece']} | {r['where']} | {r['replicas']} | {r['runtime']} | "
                     f"{r['p95_ms']:.2f} | {r['latency_source']} | "
                     f"{_usd(r['monthly_usd']) if r['monthly_usd'] is not None else r['cost_note']} |")

    if plan.segments:
        lines += ["", "## Fleet segments", "",
                  "| segment | share | sites | device | p95 ms | meets SLO |", "|---|---:|---:|---|---:|---|"]
        for seg in plan.segments:
            owned = " (owned)" if seg.owned else ""
            lines.append(f"| {seg.name} | {seg.share:.0%} | {seg.sites} | {seg.device}{owned} | "
                         f"{seg.latency_ms_p95:.1f} | {'yes' if seg.meets_slo else 'NO'} |")

    lines += ["", "## Bill of materials", "", "| item | quantity | unit price | source |", "|---|---:|---:|---|"]
    billed: set[tuple[str, str]] = set()  # a pool shared by fleet segments is one line
    for p in plan.placements:
        if p.tier == "cloud" and (p.model, p.option) not in billed:
            billed.add((p.model, p.option))
            serves = f"{p.model} for {'+'.join(p.pool_segments)}" if p.pool_segments else p.piece
            lines.append(f"| {p.provider} {p.instance_type} in {p.region} ({serves}) | {p.replicas} | "
                         f"{_usd(p.monthly_usd / p.replicas / 730)}/h | {p.price_source} ({p.price_date}) |")
    seen = set()
    for line in plan.costs.items:
        if line.kind == "edge-capex" and line.item not in seen:
            seen.add(line.item)
            lines.append(f"| {line.item} (one per site) | {line.quantity:g} | "
                         f"{_usd(line.unit_usd)}/month amortised | {line.source} |")

    lines += ["", "## Monthly cost by item", "", "| kind | item | quantity | $/month | source |",
              "|---|---|---:|---:|---|"]
    for line in plan.costs.items:
        lines.append(f"| {line.kind} | {line.item} | {line.quantity:,.4g} {line.unit} | "
                     f"{_usd(line.monthly_usd)} | {line.source} |")
    lines.append(f"| **total** | | | **{_usd(plan.costs.monthly_usd)}** | |")
    alt = ", ".join(f"{k}: {_usd(v)}" for k, v in plan.costs.by_pricing_model.items())
    lines += ["", f"The same placement at other pricing models: {alt} (— where an offer has no such price)."]

    lines += ["", "## Predicted latency per path", "", "| path | p95 ms |", "|---|---:|"]
    for path, total in paths(plan):
        lines.append(f"| {' → '.join(path)} | {total:.2f} |")
    lines += ["", "| route | bytes/request | from | to | transfer ms |", "|---|---:|---|---|---:|"]
    for r in plan.routes:
        lines.append(f"| {r.source} → {r.target} | {r.bytes_per_request:,.0f} | {r.location_from} | "
                     f"{r.location_to} | {r.transfer_ms:.2f} |")

    if plan.baselines:
        lines += ["", "## Against simple placements", "", "| baseline | $/month | p95 ms | feasible | note |",
                  "|---|---:|---:|---|---|"]
        lines.append(f"| **this plan** | **{_usd(plan.costs.monthly_usd)}** | **{plan.latency.p95_ms:.1f}** | yes | |")
        for b in plan.baselines:
            lat = "—" if b.latency_ms_p95 is None else f"{b.latency_ms_p95:.1f}"
            lines.append(f"| {b.name} | {_usd(b.monthly_usd)} | {lat} | {'yes' if b.feasible else 'no'} | {b.note} |")
    if plan.constraints:
        lines += ["", "## Constraints and slack", "", "| constraint | limit | value | slack | binding | detail |",
                  "|---|---:|---:|---:|---|---|"]
        for c in plan.constraints:
            lines.append(f"| {c.constraint} | {c.limit:,.4g} {c.unit} | {c.value:,.4g} | {c.slack:,.4g} | "
                         f"{'yes' if c.binding else 'no'} | {c.detail} |")

    lines += ["", "## Where the numbers come from", ""]
    for p in plan.placements:
        alts = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(p.runtime_alternatives_ms_p95.items()))
        lines.append(f"- {p.piece} on {p.hardware}: {source_label(p.latency_source, p.error_band)} "
                     f"(runtimes profiled: {alts}); price: {p.price_source}, {p.price_date}")
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(plan.provenance.profile_sources.items()))
    lines.append(f"- placed latencies by source: {counts}")
    if plan.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"
