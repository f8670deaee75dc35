"""A device population (phones by SoC class, owned by their users): who is served within the SLO.

Pure functions of a `Plan` (like `placement.rows`): a fleet whose segments are device classes,
each with its share of the users, answers "this model meets the SLO on-device on X % of the
users' phones, Y % in total once the rest is offloaded, for $Z a month of cloud".

- a segment is **on-device** when none of its pieces runs in the cloud (no cloud placement of its
  own and no shared cloud pool that serves it);
- **within the SLO**: the plan's per-segment latency meets the SLO (`Segment.meets_slo`);
- the **cloud cost of the offloaded share** is every cloud line of the plan (compute and egress):
  with user-owned phones nothing else is charged, so it is what offloading costs.
"""

from __future__ import annotations

from placement.plan import Plan

CLOUD_KINDS = ("compute", "egress")


def segment_placement(plan: Plan) -> dict[str, str]:
    """Per segment: "on-device", "offloaded" (every piece in the cloud) or "split"."""
    tiers: dict[str, set[str]] = {s.name: set() for s in plan.segments}
    for p in plan.placements:
        for segment in ([p.segment] if p.segment else []) + list(p.pool_segments):
            if segment in tiers:
                tiers[segment].add(p.tier)
    return {name: ("on-device" if found <= {"edge"} else "offloaded" if found == {"cloud"} else "split")
            for name, found in tiers.items()}


def population_rows(plan: Plan) -> list[dict]:
    """One row per segment: share of users, device, where it runs, latency, meets the SLO."""
    where = segment_placement(plan)
    return [{"segment": s.name, "share": s.share, "users": s.sites, "device": s.device,
             "runs": where[s.name], "latency_ms": s.latency_ms_p95, "meets_slo": s.meets_slo}
            for s in plan.segments]


def population_summary(plan: Plan) -> dict | None:
    """Shares of users served within the SLO (on-device, and in total) and the monthly cloud cost
    of the offloaded share; None for a plan without fleet segments."""
    if not plan.segments:
        return None
    rows = population_rows(plan)
    cloud = sum(i.monthly_usd for i in plan.costs.items if i.kind in CLOUD_KINDS) if plan.costs else 0.0
    return {
        "on_device_within_slo": sum(r["share"] for r in rows if r["meets_slo"] and r["runs"] == "on-device"),
        "within_slo": sum(r["share"] for r in rows if r["meets_slo"]),
        "offloaded": sum(r["share"] for r in rows if r["runs"] != "on-device"),
        "required": plan.latency.min_site_share,
        "cloud_monthly_usd": cloud,
        "slo_ms": plan.latency.slo_ms,
        "percentile": plan.latency.percentile,
    }


def population_line(plan: Plan) -> str | None:
    """The one line `placement plan` prints for a fleet (None without segments)."""
    s = population_summary(plan)
    if s is None:
        return None
    return (f"  users within the p{s['percentile']} SLO of {s['slo_ms']:g} ms: {s['on_device_within_slo']:.0%} "
            f"on-device, {s['within_slo']:.0%} in total (required {s['required']:.0%}); "
            f"{s['offloaded']:.0%} offloaded, cloud ${s['cloud_monthly_usd']:,.2f}/month")
