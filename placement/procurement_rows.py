"""Procurement report rows: pure functions of a `Plan` (and of the few facts a plan does not
carry, handed in by the caller: other pricing models' hourly prices per offer, the re-solved
sensitivity cases, the amortisation period).

Every number is rounded here, once, to what the report shows (dollars to the cent, hourly prices
to 1/100 of a cent, milliseconds to 0.1 ms); the HTML, the PDF and the CSVs format these rows and
never compute, so they cannot disagree with each other or with plan.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from placement.plan import Plan
from placement.rows import (
    HOURS_PER_MONTH,
    baseline_rows,
    headline,
    path_rows,
    pool_key,
    pool_serves,
    source_label,
)

PRICING_MODELS = ("on-demand", "spot", "reserved-1y", "reserved-3y")
COMMITMENT_MONTHS = {"on-demand": 0, "spot": 0, "reserved-1y": 12, "reserved-3y": 36}
PURCHASE_NOTES = {
    "on-demand": "no commitment",
    "spot": "no commitment; capacity can be reclaimed at short notice",
    "reserved-1y": "1-year commitment, no upfront",
    "reserved-3y": "3-year commitment, no upfront",
}
HORIZONS = (("month", 1), ("1 year", 12), ("3 years", 36))


def usd(x: float | None) -> float | None:
    return None if x is None else round(float(x), 2) + 0.0  # never -0.0


def ms(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1) + 0.0


# -- what the plan is -----------------------------------------------------------------------

def placement_label(p) -> str:
    """Where one piece runs, in a buyer's words."""
    if p.tier == "edge":
        return f"edge {p.instance_type}"
    cloud = f"{p.provider} {p.region} {p.instance_type} ×{p.replicas}"
    if p.head is not None:
        return f"head on edge {p.head.device}, tail on {cloud}"
    return cloud + (" (one pool)" if p.pool_pieces else "")


def placement_summary(plan: Plan) -> str:
    """'screener and classifier on edge rpi5-8gb' (pieces grouped by where they run)."""
    groups: dict[str, list[str]] = {}
    for p in plan.placements:
        groups.setdefault(placement_label(p), []).append(p.piece)

    def names(pieces):
        return pieces[0] if len(pieces) == 1 else f"{', '.join(pieces[:-1])} and {pieces[-1]}"

    return "; ".join(f"{names(pieces)} on {where}" for where, pieces in groups.items())


def placement_key(plan: Plan) -> tuple:
    return tuple(sorted((p.piece, p.offer, p.runtime, p.batch, p.replicas, p.cut or "")
                        for p in plan.placements))


def today_assignment(plan: Plan) -> dict[str, str]:
    """The plan's placement as `evaluate` takes it: piece -> offer/runtime/bB/rN (the replica
    count is what was bought; a pool shared by fleet segments is named by its offer, one shared by
    co-located pieces by `shared`)."""
    return {p.piece: f"{p.offer}/{p.runtime}/b{p.batch}{'/shared' if p.pool_pieces else ''}/r{p.replicas}"
            for p in plan.placements}


def summary(plan: Plan) -> dict:
    """The headline row plus the sentences of the report's first paragraph."""
    h = headline(plan)
    row = {**h, "monthly_usd": usd(h["monthly_usd"]), "annual_usd": usd(h["annual_usd"]),
           "latency_ms": ms(h["latency_ms"]), "placement": placement_summary(plan),
           "saving_usd": None, "saving_vs": None, "saving_percent": None, "sentences": []}
    if not plan.placements or plan.costs is None:
        reason = plan.explanation.messages[0] if plan.explanation and plan.explanation.messages else (
            plan.violations[0] if plan.violations else plan.solver.reason or plan.status)
        row["sentences"] = [f"No placement of {plan.application} meets every constraint ({plan.status}): {reason}"]
        return row
    sites = f"on {h['site_share_meeting_slo']:.0%} of sites" + (
        f" (the spec asks for {h['min_site_share']:.0%})" if h["min_site_share"] < 1 else "")
    meets = "meets" if h["meets_slo"] else "misses"
    s = [f"Run {row['placement']}.",
         f"It costs ${row['monthly_usd']:,.2f} a month ({h['pricing_model']} prices; ${row['annual_usd']:,.2f} a year) "
         f"and {meets} the p{h['percentile']} SLO of {h['slo_ms']:g} ms {sites}: "
         f"{row['latency_ms']:.1f} ms on its slowest path."]
    others = [b for b in baseline_rows(plan) if not b["this_plan"] and b["feasible"] and b["monthly_usd"] is not None]
    if others:
        cheapest = min(others, key=lambda b: b["monthly_usd"])
        saving = usd(cheapest["monthly_usd"] - row["monthly_usd"])
        if saving > 0.005:
            row.update(saving_usd=saving, saving_vs=cheapest["name"],
                       saving_percent=round(100 * saving / cheapest["monthly_usd"], 1))
            s.append(f"Against the cheapest simple placement that also meets the SLO ({cheapest['name']}, "
                     f"${cheapest['monthly_usd']:,.2f}/month) it saves ${saving:,.2f} a month "
                     f"({row['saving_percent']:.1f}%).")
        else:
            dearer = [b for b in others if b["monthly_usd"] - row["monthly_usd"] > 0.005]
            text = (f"It is the {cheapest['name']} placement, the cheapest simple placement that meets the SLO")
            if dearer:
                nxt = min(dearer, key=lambda b: b["monthly_usd"])
                saving = usd(nxt["monthly_usd"] - row["monthly_usd"])
                row.update(saving_usd=saving, saving_vs=nxt["name"],
                           saving_percent=round(100 * saving / nxt["monthly_usd"], 1))
                text += (f"; against the next one ({nxt['name']}, ${nxt['monthly_usd']:,.2f}/month) "
                         f"it saves ${saving:,.2f} a month ({row['saving_percent']:.1f}%)")
            s.append(text + ".")
    else:
        s.append("No simple placement (all-edge, all-cloud, one cut, greedy) meets the SLO.")
    row["sentences"] = s
    return row


# -- what to buy ----------------------------------------------------------------------------

def _cloud_pools(plan: Plan) -> list:
    """Each cloud pool once (a pool shared by fleet segments or co-located pieces is one line)."""
    seen: set[str] = set()
    pools = []
    for p in plan.placements:
        if p.tier == "cloud" and pool_key(p) not in seen:
            seen.add(pool_key(p))
            pools.append(p)
    return pools


def _edge_lines(plan: Plan) -> list[dict]:
    """The edge devices the plan uses, one per device model (per fleet segment in a fleet)."""
    by_label: dict[str, dict] = {}
    for line in plan.costs.items if plan.costs else ():
        if line.kind in ("edge-capex", "edge-power"):
            entry = by_label.setdefault(line.item, {"label": line.item, "quantity": line.quantity})
            entry[line.kind] = line
    segments = {f"{s.device} ({s.name})": s for s in plan.segments}
    out = []
    for label, entry in by_label.items():
        seg = segments.get(label)
        capex = entry.get("edge-capex")
        out.append({"label": label, "device": seg.device if seg else label, "segment": seg.name if seg else "",
                    "quantity": int(round(entry["quantity"])), "owned": bool(seg.owned) if seg else (
                        capex is not None and capex.source.startswith("owned")),
                    "capex": capex, "power": entry.get("edge-power")})
    return out


def bom_rows(plan: Plan, amortisation_months: int) -> list[dict]:
    """What to buy, per tier: cloud pools (provider, region, instance type, count, purchase
    option) and edge devices (device, count per fleet segment, unit price, owned or to buy).

    `monthly_usd` is what the line costs every month (cloud compute, edge power);
    `capital_usd` what is paid once up front (edge devices bought); `amortised_usd` that
    capital spread over the amortisation period as the plan's monthly total counts it."""
    rows = []
    pricing_model = plan.costs.pricing_model if plan.costs else ""
    for p in _cloud_pools(plan):
        serves = pool_serves(p)
        if p.head is not None:
            serves += f" (tail after {p.cut})"
        rows.append({
            "tier": "cloud", "item": f"{p.provider} {p.instance_type}", "provider": p.provider,
            "region": p.region, "instance_type": p.instance_type, "segment": "", "serves": serves,
            "quantity": p.replicas, "purchase_option": pricing_model, "owned": False,
            "unit_price_usd": round(p.monthly_usd / p.replicas / HOURS_PER_MONTH, 4), "unit": "per hour",
            "monthly_usd": usd(p.monthly_usd), "capital_usd": 0.0, "amortised_usd": 0.0,
            "price_source": p.price_source, "price_date": p.price_date,
        })
    for e in _edge_lines(plan):
        capex, power = e["capex"], e["power"]
        unit_price = 0.0 if e["owned"] or capex is None else usd(capex.unit_usd * amortisation_months)
        rows.append({
            "tier": "edge", "item": e["device"], "provider": "edge", "region": "sites",
            "instance_type": e["device"], "segment": e["segment"],
            "serves": f"one per site{' of ' + e['segment'] if e['segment'] else ''}",
            "quantity": e["quantity"], "purchase_option": "owned" if e["owned"] else "buy",
            "owned": e["owned"], "unit_price_usd": unit_price, "unit": "per device",
            "monthly_usd": usd(power.monthly_usd) if power else 0.0,
            "capital_usd": usd(unit_price * e["quantity"]),
            "amortised_usd": usd(capex.monthly_usd) if capex else 0.0,
            "price_source": capex.source if capex else "", "price_date": plan.provenance.price_date,
        })
    return rows


def cost_item_rows(plan: Plan) -> list[dict]:
    """The plan's itemised monthly costs, each marked capital (amortised) or running."""
    if not plan.costs:
        return []
    return [{"kind": i.kind, "item": i.item, "quantity": i.quantity, "unit": i.unit,
             "unit_usd": round(i.unit_usd, 4), "monthly_usd": usd(i.monthly_usd),
             "split": "capital (amortised)" if i.kind == "edge-capex" else "running",
             "source": i.source} for i in plan.costs.items]


def tco_rows(plan: Plan, amortisation_months: int) -> list[dict]:
    """Total cost of ownership over a month, a year and three years: the capital paid up front
    for edge devices, the running costs (cloud, power, egress) for the period, their sum (cash),
    and the plan's amortised total (capital spread over `amortisation_months`)."""
    if not plan.costs:
        return []
    bom = bom_rows(plan, amortisation_months)
    capital = usd(sum(b["capital_usd"] for b in bom))
    amortised_capex = usd(sum(i.monthly_usd for i in plan.costs.items if i.kind == "edge-capex"))
    running_monthly = usd(plan.costs.monthly_usd - amortised_capex)
    rows = []
    for name, months in HORIZONS:
        amortised = {1: plan.costs.monthly_usd, 12: plan.costs.annual_usd, 36: plan.costs.annual_usd * 3}[months]
        running = usd(running_monthly * months)
        rows.append({"horizon": name, "months": months, "capital_usd": capital, "running_usd": running,
                     "cash_usd": usd(capital + running), "amortised_usd": usd(amortised),
                     "amortised_capital_usd": usd(amortised_capex * months)})
    return rows


def running_by_kind(plan: Plan) -> dict[str, float]:
    out: dict[str, float] = {}
    for i in plan.costs.items if plan.costs else ():
        out[i.kind] = usd(out.get(i.kind, 0.0) + i.monthly_usd)
    return out


# -- purchase options -----------------------------------------------------------------------

def _effective(monthly: float | None, model: str) -> tuple[float | None, float | None, float | None]:
    """(commitment, cost over 1 year, cost over 3 years): a reservation is paid for its whole
    term even when it is needed for less."""
    if monthly is None:
        return None, None, None
    commit = COMMITMENT_MONTHS[model]
    return (usd(monthly * commit), usd(monthly * max(12, commit)), usd(monthly * max(36, commit)))


def purchase_option_rows(plan: Plan, hourly_by_offer: dict[str, dict[str, float | None]]) -> list[dict]:
    """Each cloud line, and the whole plan, at on-demand, spot, reserved 1y and 3y (team
    prices: the spec's discounts applied), with the effective cost over 1 and 3 years.

    `hourly_by_offer[offer][pricing_model]` is the hourly price (None where the price data has
    none); the plan's own pricing model always uses the plan's number."""
    if not plan.costs:
        return []
    chosen = plan.costs.pricing_model
    rows = []
    pools = _cloud_pools(plan)
    cloud_at: dict[str, float | None] = {m: 0.0 for m in PRICING_MODELS}
    for p in pools:
        line = f"{p.provider} {p.region} {p.instance_type} ×{p.replicas}"
        on_demand = None
        for model in PRICING_MODELS:
            if model == chosen:
                hourly = p.monthly_usd / p.replicas / HOURS_PER_MONTH
                monthly = usd(p.monthly_usd)
            else:
                hourly = hourly_by_offer.get(p.offer, {}).get(model)
                monthly = None if hourly is None else usd(p.replicas * hourly * HOURS_PER_MONTH)
            if model == "on-demand":
                on_demand = monthly
            commit, one, three = _effective(monthly, model)
            cloud_at[model] = None if monthly is None or cloud_at[model] is None else cloud_at[model] + monthly
            rows.append({
                "scope": "cloud line", "line": line, "offer": p.offer, "pricing_model": model,
                "chosen": model == chosen, "hourly_usd": None if hourly is None else round(hourly, 4),
                "monthly_usd": monthly, "commitment_usd": commit, "cost_1y_usd": one, "cost_3y_usd": three,
                "saving_vs_on_demand_percent": None if monthly is None or not on_demand else
                round(100 * (on_demand - monthly) / on_demand, 1),
                "note": PURCHASE_NOTES[model] if monthly is not None else f"no {model} price in the price data",
            })
    by_model = plan.costs.by_pricing_model
    non_cloud = {i.kind for i in plan.costs.items} - {"compute"}
    on_demand = by_model.get("on-demand")
    for model in PRICING_MODELS if pools else (chosen,):
        monthly = by_model.get(model)
        if model == chosen:
            monthly = plan.costs.monthly_usd
        cloud_monthly = cloud_at[model]
        if monthly is None:
            commit = one = three = None
        else:
            commit = usd((cloud_monthly or 0.0) * COMMITMENT_MONTHS[model])
            extra = max(0, COMMITMENT_MONTHS[model] - 12) * (cloud_monthly or 0.0)
            # the plan's own annual figure where the total is the plan's (no cent of rounding apart)
            annual = plan.costs.annual_usd if abs(monthly - plan.costs.monthly_usd) < 0.005 else monthly * 12
            one, three = usd(annual + extra), usd(annual * 3)
        missing = [r["line"] for r in rows if r["pricing_model"] == model and r["monthly_usd"] is None]
        rows.append({
            "scope": "whole plan", "line": "whole plan",
            "offer": "", "pricing_model": model, "chosen": model == chosen, "hourly_usd": None,
            "monthly_usd": usd(monthly), "commitment_usd": commit, "cost_1y_usd": one, "cost_3y_usd": three,
            "saving_vs_on_demand_percent": None if monthly is None or not on_demand else
            round(100 * (on_demand - monthly) / on_demand, 1),
            "note": (f"no {model} price for {', '.join(missing)}" if missing else
                     "not priced: an offer lacks this price" if monthly is None else
                     "no cloud line to buy: every pricing model costs the same" if not pools else
                     PURCHASE_NOTES[model] + (f"; plus {', '.join(sorted(non_cloud))}" if non_cloud else "")),
        })
    return rows


def unpriced_offer_rows(candidates: list[dict]) -> list[dict]:
    """Candidate cloud offers without a price at some pricing model: listed, never dropped
    without a word. `candidates`: {offer, provider, region, instance_type, <model>: hourly|None}."""
    rows = []
    for c in candidates:
        missing = [m for m in PRICING_MODELS if c.get(m) is None]
        if missing:
            rows.append({"offer": c["offer"], "provider": c["provider"], "region": c["region"],
                         "instance_type": c["instance_type"], "missing": ", ".join(missing)})
    return rows


# -- what if ---------------------------------------------------------------------------------

@dataclass
class Case:
    """One sensitivity case: the plan re-solved under it, and today's placement evaluated under
    it (None with `today_note` when today's placement cannot be expressed there)."""

    name: str
    change: str
    solved: Plan
    today: Plan | None
    today_note: str = ""
    today_fails: bool = False  # today's placement has no option at all under the case


def sensitivity_rows(plan: Plan, cases: list[Case]) -> list[dict]:
    """Per case: the new cheapest plan's cost and latency, whether today's placement still
    meets the SLO (and every other constraint), and the new placement where it differs."""
    base = plan.costs.monthly_usd if plan.costs else None
    key = placement_key(plan) if plan.placements else None
    rows = []
    for c in cases:
        s, t = c.solved, c.today
        solved_ok = bool(s.placements) and s.costs is not None
        cost = usd(s.costs.monthly_usd) if solved_ok else None
        today_lat = ms(t.latency.p95_ms) if t is not None and t.latency else None
        changed = solved_ok and key is not None and placement_key(s) != key
        rows.append({
            "case": c.name, "change": c.change, "status": s.status,
            "monthly_usd": cost, "delta_usd": usd(cost - base) if cost is not None and base is not None else None,
            "latency_ms": ms(s.latency.p95_ms) if solved_ok and s.latency else None,
            "today_monthly_usd": usd(t.costs.monthly_usd) if t is not None and t.costs else None,
            "today_latency_ms": today_lat,
            "today_meets_slo": None if t is None or not t.latency else t.latency.p95_ms <= t.latency.slo_ms + 1e-9,
            "today_holds": (False if c.today_fails else None) if t is None else t.feasible,
            "today_violations": c.today_note if t is None else "; ".join(t.violations),
            "placement_changed": changed if solved_ok else None,
            "new_placement": placement_summary(s) if changed else ("" if solved_ok else (
                s.explanation.messages[0] if s.explanation and s.explanation.messages else
                s.solver.reason or "no plan")),
        })
    return rows


# -- how sure -------------------------------------------------------------------------------

def risk_rows(plan: Plan) -> list[dict]:
    """Each placed latency with its source; estimates with their band and the compute time at
    the top of it."""
    rows = []
    for p in plan.placements:
        parts = [(p.piece, p.hardware, p.runtime, p.latency_source, p.error_band, p.compute_ms_p95)]
        if p.head is not None:
            parts.insert(0, (p.head.piece, p.head.hardware, p.head.runtime, p.head.latency_source, None,
                             p.head.latency_ms_p95))
        for piece, hardware, runtime, source, band, compute in parts:
            top = compute * (1 + band) if source == "estimated" and band else None
            rows.append({"piece": piece, "hardware": hardware, "runtime": runtime,
                         "source": source_label(source, band), "estimated": source == "estimated",
                         "error_band_percent": None if band is None else round(100 * band, 1),
                         "compute_ms": ms(compute), "compute_top_of_band_ms": ms(top)})
    return rows


# -- charts' data ---------------------------------------------------------------------------

def path_chart_rows(plan: Plan) -> list[dict]:
    return [{"path": r["path"], "compute_ms": ms(r["compute_ms"]), "transfer_ms": ms(r["transfer_ms"]),
             "wait_ms": ms(r["wait_ms"]), "latency_ms": ms(r["latency_ms"]), "slo_ms": r["slo_ms"]}
            for r in path_rows(plan)]


def frontier_chart_rows(plan: Plan, points: list[Plan]) -> list[dict]:
    key = placement_key(plan) if plan.placements else None
    rows = []
    for p in points:
        if not p.costs or not p.latency:
            continue
        rows.append({"monthly_usd": usd(p.costs.monthly_usd), "latency_ms": ms(p.latency.p95_ms),
                     "chosen": key is not None and placement_key(p) == key,
                     "placement": placement_summary(p)})
    return rows


# -- where the numbers come from ------------------------------------------------------------

def price_provenance_rows(plan: Plan) -> list[dict]:
    """Price source and date per offer the plan buys from."""
    seen: dict[str, dict] = {}
    for p in plan.placements:
        if p.head is not None:
            seen.setdefault(p.head.offer, {"offer": p.head.offer, "price_source": "see the edge device line",
                                           "price_date": p.price_date})
        seen.setdefault(p.offer, {"offer": p.offer, "price_source": p.price_source, "price_date": p.price_date})
    return list(seen.values())


def profile_provenance_rows(plan: Plan, profile_rows: list[dict] | None = None) -> list[dict]:
    """Profile source per placed piece and hardware (with the date and TVM version of the row
    when the caller has the profile table)."""
    extra = {(r["piece"], r["hardware"], r["runtime"]): r for r in profile_rows or ()}
    rows = []
    for r in risk_rows(plan):
        e = extra.get((r["piece"], r["hardware"], r["runtime"]), {})
        rows.append({"piece": r["piece"], "hardware": r["hardware"], "runtime": r["runtime"],
                     "source": r["source"], "measured_at": e.get("measured_at", ""),
                     "tvm_version": e.get("tvm_version", "")})
    return rows
