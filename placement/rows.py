"""Report rows: pure functions of a `Plan`, each number computed in one place.

The CLI tables, the Markdown summary, the procurement report and the app all render these rows,
so two renderers cannot disagree about a number (a test compares them). A plan.json from last
month renders the same today: nothing here reads prices, profiles or the clock.
"""

from __future__ import annotations

from placement.plan import Plan

HOURS_PER_MONTH = 730


def latency_parts(p) -> str:
    """compute + transfer + wait of one piece, e.g. `108.3 c + 0.0 t + 68.4 w (exact 9.1)`."""
    exact = "" if p.wait_exact_ms is None else f" (exact {p.wait_exact_ms:.1f})"
    return f"{p.compute_ms_p95:.1f} c + {p.cut_transfer_ms:.1f} t + {p.wait_ms:.1f} w{exact}"


def source_label(source: str, error_band: float | None) -> str:
    """`estimated ×/÷1.31`: an estimate's band is multiplicative (the latency lies between
    estimate ÷ 1.31 and estimate × 1.31; docs/profiles.md section 4)."""
    if source == "estimated":
        return f"estimated ×/÷{1 + error_band:.2f}" if error_band else "estimated"
    return source


def where(p) -> str:
    if p.tier == "edge":
        return f"edge {p.instance_type}"
    cloud = f"{p.provider} {p.region} {p.instance_type}"
    if p.head is not None:
        return f"split at {p.cut}: head on edge {p.head.device}, tail on {cloud}"
    return cloud


def pool_key(p) -> str:
    """The cloud pool a placement runs in: placements with one key share one pool (paid once).
    A plan from before schema 1.3 names no pool: a fleet's shared pool is its model and option."""
    return p.pool or f"{p.model}:{p.option}"


def shared_by(p) -> list[str]:
    """Who shares this placement's cloud pool: fleet segments, or co-located pieces; [] alone."""
    return p.pool_pieces or (p.pool_segments if len(p.pool_segments) > 1 else [])


def headline(plan: Plan) -> dict:
    """Status, money and latency in one row: the app's headline and the summary's first lines."""
    s = plan.solver
    row = {
        "application": plan.application, "status": plan.status, "feasible": plan.feasible,
        "status_label": s.status + (f" (gap {s.gap:.2%})" if s.status == "feasible" and s.gap else ""),
        "objective": s.objective, "wall_time_s": s.wall_time_s, "time_limit_s": s.time_limit_s,
        "seed": s.seed, "workers": s.workers, "options": s.options, "gap": s.gap,
        "budget_usd": plan.budget_usd, "price_date": plan.provenance.price_date,
        "tvm_version": plan.provenance.tvm_version, "spec_sha256": plan.provenance.spec_sha256,
        "monthly_usd": None, "annual_usd": None, "usd_per_million_requests": None,
        "pricing_model": None, "latency_ms": None, "percentile": None, "slo_ms": None,
        "meets_slo": None, "min_site_share": None, "site_share_meeting_slo": None,
    }
    if plan.costs:
        c = plan.costs
        row.update(monthly_usd=c.monthly_usd, annual_usd=c.annual_usd,
                   usd_per_million_requests=c.usd_per_million_requests, pricing_model=c.pricing_model)
    if plan.latency:
        lat = plan.latency
        row.update(latency_ms=lat.p95_ms, percentile=lat.percentile, slo_ms=lat.slo_ms,
                   meets_slo=lat.p95_ms <= lat.slo_ms, min_site_share=lat.min_site_share,
                   site_share_meeting_slo=lat.site_share_meeting_slo)
    return row


def plan_rows(plan: Plan) -> list[dict]:
    """One row per piece, in the words of the plan table (CLI, app and Markdown share it)."""
    rows = []
    pool_owner: dict[str, str] = {}  # a shared pool's cost shows on its first row
    for p in plan.placements:
        shared = p.tier == "cloud" and bool(shared_by(p))
        first = pool_owner.setdefault(pool_key(p), p.piece) if shared else p.piece
        cost_note = ("devices below" if p.tier == "edge" else
                     f"same pool as {first}" if first != p.piece else "")
        rows.append({
            "piece": p.piece,
            "model": p.model or p.piece,
            "segment": p.segment,
            "tier": p.tier,
            "where": where(p),
            "replicas": (f"{p.replicas} (pool of {len(p.pool_pieces)})" if p.pool_pieces else f"{p.replicas}"
                         + (f" shared by {'+'.join(shared_by(p))}" if shared else ""))
            if p.tier == "cloud" else f"1/site x {p.devices}",
            "runtime": p.runtime,
            "batch": p.batch,
            "p95_ms": p.latency_ms_p95,
            "compute_ms": p.compute_ms_p95,
            "wait_ms": p.wait_ms,
            "transfer_ms": p.cut_transfer_ms,
            "wait_exact_ms": p.wait_exact_ms,
            "wait_source": p.wait_source or "queueing model",
            "parts": latency_parts(p),
            "utilisation": p.utilisation,
            "latency_source": source_label(p.latency_source, p.error_band),
            "source": p.latency_source,
            "error_band": p.error_band,
            "monthly_usd": None if cost_note else p.monthly_usd,
            "cost_note": cost_note,
        })
    return rows


def segment_rows(plan: Plan) -> list[dict]:
    return [{"segment": s.name, "share": s.share, "sites": s.sites, "device": s.device, "owned": s.owned, "owned_by": s.owned_by,
             "latency_ms": s.latency_ms_p95, "meets_slo": s.meets_slo} for s in plan.segments]


def bom_rows(plan: Plan) -> list[dict]:
    """What to buy: one line per cloud pool (a pool shared by fleet segments or co-located pieces
    is one line) and one per edge device model, with quantity, unit price and price source."""
    rows = []
    billed: set[str] = set()
    pricing_model = plan.costs.pricing_model if plan.costs else ""
    for p in plan.placements:
        if p.tier != "cloud" or pool_key(p) in billed:
            continue
        billed.add(pool_key(p))
        serves = pool_serves(p)
        rows.append({
            "tier": "cloud", "item": f"{p.provider} {p.instance_type} in {p.region}",
            "provider": p.provider, "region": p.region, "instance_type": p.instance_type,
            "serves": serves, "quantity": p.replicas, "purchase_option": pricing_model,
            "unit_usd": p.monthly_usd / p.replicas / HOURS_PER_MONTH, "unit": "hour",
            "monthly_usd": p.monthly_usd, "owned": False,
            "source": f"{p.price_source} ({p.price_date})",
        })
    seen: set[str] = set()
    for line in plan.costs.items if plan.costs else ():
        if line.kind == "edge-capex" and line.item not in seen:
            seen.add(line.item)
            rows.append({
                "tier": "edge", "item": line.item, "provider": "edge", "region": "sites",
                "instance_type": line.item, "serves": "one per site", "quantity": line.quantity,
                "purchase_option": "buy", "unit_usd": line.unit_usd, "unit": "month amortised",
                "monthly_usd": line.monthly_usd, "owned": False, "source": line.source,
            })
    return rows


def pool_serves(p) -> str:
    """What one cloud pool runs, in a BOM line's words."""
    if p.pool_pieces:
        return "one pool: " + " + ".join(p.pool_pieces)
    return f"{p.model} for {'+'.join(p.pool_segments)}" if p.pool_segments else p.piece


def cost_rows(plan: Plan) -> list[dict]:
    """The plan's itemised monthly costs (they add up to the plan's total)."""
    if not plan.costs:
        return []
    return [{"kind": i.kind, "item": i.item, "quantity": i.quantity, "unit": i.unit, "unit_usd": i.unit_usd,
             "monthly_usd": i.monthly_usd, "source": i.source} for i in plan.costs.items]


def cost_by_kind(plan: Plan) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in cost_rows(plan):
        out[row["kind"]] = round(out.get(row["kind"], 0.0) + row["monthly_usd"], 2)
    return out


def pricing_model_rows(plan: Plan) -> list[dict]:
    """The same placement at every pricing model (None where an offer lacks that price)."""
    if not plan.costs:
        return []
    return [{"pricing_model": k, "monthly_usd": v, "annual_usd": None if v is None else round(v * 12, 2),
             "chosen": k == plan.costs.pricing_model} for k, v in plan.costs.by_pricing_model.items()]


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


def path_rows(plan: Plan) -> list[dict]:
    """Each source -> sink path split into compute, transfer and wait (they add up to its p95)."""
    succ: dict[str, list] = {}
    for r in plan.routes:
        succ.setdefault(r.source, []).append(r)
    by_piece = {p.piece: p for p in plan.placements}
    rows = []
    for path, total in paths(plan):
        transfer = sum(r.transfer_ms for a, b in zip(path, path[1:]) for r in succ.get(a, ()) if r.target == b)
        wait = sum(by_piece[n].wait_ms for n in path if n in by_piece)
        rows.append({"path": " → ".join(path), "latency_ms": total, "transfer_ms": transfer, "wait_ms": wait,
                     "compute_ms": total - transfer - wait,
                     "slo_ms": plan.latency.slo_ms if plan.latency else None})
    return rows


def route_rows(plan: Plan) -> list[dict]:
    return [{"route": f"{r.source} → {r.target}", "source": r.source, "target": r.target,
             "bytes_per_request": r.bytes_per_request, "location_from": r.location_from,
             "location_to": r.location_to, "transfer_ms": r.transfer_ms} for r in plan.routes]


def baseline_rows(plan: Plan) -> list[dict]:
    """This plan first, then every simple baseline, with what it costs and whether it holds."""
    if not plan.baselines:
        return []
    rows = [{"name": "this plan", "monthly_usd": plan.costs.monthly_usd if plan.costs else None,
             "latency_ms": plan.latency.p95_ms if plan.latency else None, "feasible": plan.feasible,
             "note": "", "this_plan": True}]
    rows += [{"name": b.name, "monthly_usd": b.monthly_usd, "latency_ms": b.latency_ms_p95,
              "feasible": b.feasible, "note": b.note, "this_plan": False} for b in plan.baselines]
    return rows


def slack_rows(plan: Plan) -> list[dict]:
    return [{"constraint": c.constraint, "limit": c.limit, "value": c.value, "slack": c.slack, "unit": c.unit,
             "binding": c.binding, "detail": c.detail} for c in plan.constraints]


def provenance_rows(plan: Plan) -> list[dict]:
    """Where each placed number comes from: the latency's source and the price's."""
    return [{"piece": p.piece, "hardware": p.hardware, "latency_source": source_label(p.latency_source, p.error_band),
             "runtimes_ms": {k: v for k, v in sorted(p.runtime_alternatives_ms_p95.items())},
             "price_source": p.price_source, "price_date": p.price_date} for p in plan.placements]


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
                     "price_date": p.provenance.price_date,
                     "meets_slo": p.latency.p95_ms <= p.latency.slo_ms,
                     "placement": placement_line(p)})
    return rows


def placement_line(plan: Plan) -> str:
    """`a@rpi5-8gb; b+c@c7a.largex2 (one pool)`: one entry per piece, one per co-located pool."""
    out = []
    for x in plan.placements:
        if x.pool_pieces and x.piece != x.pool_pieces[0]:
            continue  # named with the pool's first piece
        name = "+".join(x.pool_pieces) if x.pool_pieces else x.piece
        out.append(f"{name}@{x.instance_type}" + (f"x{x.replicas}" if x.tier == "cloud" else "")
                   + (" (one pool)" if x.pool_pieces else ""))
    return "; ".join(out)
