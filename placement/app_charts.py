"""The app's charts and badges: HoloViews elements and HTML snippets drawn from report rows
(`placement.rows`), so every number shown is the one the CLI and the reports print."""

from __future__ import annotations

import holoviews as hv
import pandas as pd

from placement import rows

SOURCE_LABELS = {"measured-local": "measured here", "measured-rpc": "measured on a device",
                 "imported": "imported"}
BADGE_COLOURS = {"measured here": "#d4edda", "measured on a device": "#d1ecf1", "tuned": "#e2d9f3",
                 "imported": "#fff3cd"}
KIND_LABELS = {"compute": "cloud compute", "edge-capex": "edge devices", "edge-power": "edge power",
               "egress": "egress"}


def usd(x) -> str:
    return "—" if x is None else f"${x:,.2f}"


def badge(row: dict) -> str:
    """The provenance badge of a placed latency, in the issue's words."""
    if row["runtime"] == "tvm-tuned" and row["source"] in ("measured-local", "measured-rpc"):
        return "tuned"
    if row["source"] == "estimated":
        return f"estimated ±{row['error_band']:.0%}" if row["error_band"] else "estimated"
    return SOURCE_LABELS.get(row["source"], row["source"])


def headline_text(plan) -> str:
    h = rows.headline(plan)
    status = h["status_label"]
    parts = [f"**{status}**"]
    if h["monthly_usd"] is not None:
        parts += [f"{usd(h['monthly_usd'])}/month", f"{usd(h['annual_usd'])}/year",
                  f"{usd(h['usd_per_million_requests'])} per million requests"]
    if h["latency_ms"] is not None:
        mark = "≤" if h["meets_slo"] else ">"
        parts.append(f"p{h['percentile']} {h['latency_ms']:.1f} ms {mark} SLO {h['slo_ms']:g} ms")
        parts.append(f"{h['site_share_meeting_slo']:.0%} of sites meet it")
    parts.append(f"budget {usd(h['budget_usd'])}")
    parts.append(f"prices of {h['price_date']}")
    return " · ".join(parts)


# -- charts: pure functions of a plan -----------------------------------------------------------

def _layers(plan) -> dict[str, int]:
    depth = {"source": 0}
    changed = True
    while changed:
        changed = False
        for r in plan.routes:
            if r.source in depth and depth.get(r.target, -1) < depth[r.source] + 1:
                depth[r.target] = depth[r.source] + 1
                changed = True
                if depth[r.target] > len(plan.routes) + 1:
                    return depth
    return depth


def place_label(p) -> str:
    if p.tier == "edge":
        return f"site device {p.instance_type}" + (f" ({p.segment})" if p.segment else "")
    if p.head is not None:
        return f"split: {p.head.device} → {p.region} {p.instance_type} ×{p.replicas}"
    return f"{p.provider} {p.region} {p.instance_type} ×{p.replicas}"


def _no_plan(plan) -> bool:
    return plan is None or not plan.placements


def dataflow_chart(plan=None):
    """source → pieces → sink, each piece coloured by where it runs, edges with bytes and ms."""
    routes = [] if _no_plan(plan) else plan.routes
    depth = _layers(plan) if routes else {"source": 0, "sink": 1}
    by_layer: dict[int, list[str]] = {}
    for node, d in sorted(depth.items(), key=lambda kv: kv[1]):
        by_layer.setdefault(d, []).append(node)
    pos = {n: (d, i - (len(ns) - 1) / 2) for d, ns in by_layer.items() for i, n in enumerate(ns)}
    placed = {} if _no_plan(plan) else {p.piece: p for p in plan.placements}
    nodes = pd.DataFrame([{"x": pos[n][0], "y": pos[n][1], "node": n,
                           "where": place_label(placed[n]) if n in placed else "site (source / sink)",
                           "p95_ms": placed[n].latency_ms_p95 if n in placed else 0.0}
                          for n in pos], columns=["x", "y", "node", "where", "p95_ms"])
    segs = pd.DataFrame([{"x0": pos[r.source][0], "y0": pos[r.source][1], "x1": pos[r.target][0],
                          "y1": pos[r.target][1]} for r in routes if r.source in pos and r.target in pos],
                        columns=["x0", "y0", "x1", "y1"])
    edge_labels = pd.DataFrame([{"x": (pos[r.source][0] + pos[r.target][0]) / 2,
                                 "y": (pos[r.source][1] + pos[r.target][1]) / 2 + 0.12,
                                 "text": f"{r.bytes_per_request / 1000:,.0f} kB · {r.transfer_ms:.1f} ms"}
                                for r in routes if r.source in pos and r.target in pos],
                               columns=["x", "y", "text"])
    chart = (hv.Segments(segs, ["x0", "y0", "x1", "y1"]).opts(color="#999", line_width=2)
             * hv.Points(nodes, ["x", "y"], ["where", "node", "p95_ms"]).opts(
                 color="where", cmap="Category10", size=34, line_color="white", tools=["hover"],
                 legend_position="bottom", show_legend=True)
             * hv.Labels(nodes, ["x", "y"], "node").opts(text_font_size="9pt", yoffset=-0.3)
             * hv.Labels(edge_labels, ["x", "y"], "text").opts(text_font_size="8pt", text_color="#555"))
    width = max(depth.values(), default=1)
    return chart.opts(xaxis=None, yaxis=None, show_grid=False, height=320, width=500, toolbar=None,
                      xlim=(-0.4, width + 0.4), ylim=(min(nodes["y"]) - 0.6, max(nodes["y"]) + 0.6),
                      title="dataflow: where each piece runs")


def latency_chart(plan=None):
    """Per source → sink path: compute, transfer and wait of each piece, stacked, against the SLO."""
    data = []
    if not _no_plan(plan):
        placed = {p.piece: p for p in plan.placements}
        into = {(r.source, r.target): r.transfer_ms for r in plan.routes}
        for i, (path, _total) in enumerate(rows.paths(plan)[:6]):
            name = f"path {i + 1}"
            for a, b in zip(path, path[1:]):
                if into.get((a, b)):
                    data.append({"path": name, "part": f"transfer → {b}", "ms": into[(a, b)]})
                if b in placed:
                    p = placed[b]
                    data.append({"path": name, "part": f"{b} compute", "ms": p.latency_ms_p95 - p.wait_ms})
                    if p.wait_ms > 0:
                        data.append({"path": name, "part": f"{b} wait", "ms": p.wait_ms})
    # an empty stacked bar chart does not draw: a zero bar stands for "no plan"
    df = pd.DataFrame(data or [{"path": "no plan", "part": "none", "ms": 0.0}], columns=["path", "part", "ms"])
    bars = hv.Bars(df, ["path", "part"], "ms").opts(
        stacked=True, cmap="Category20", tools=["hover"], legend_position="right", ylabel="ms (p95 parts)",
        xlabel="")
    slo = plan.latency.slo_ms if plan is not None and plan.latency else 0
    return (bars * hv.HLine(slo).opts(color="red", line_dash="dashed")).opts(
        title=f"latency per path against the SLO ({slo:g} ms, dashed)", height=300, responsive=True)


def cost_chart(plan=None):
    by_kind = {} if plan is None or not plan.costs else rows.cost_by_kind(plan)
    df = pd.DataFrame([{"item": KIND_LABELS.get(k, k), "usd": v} for k, v in by_kind.items()]
                      or [{"item": "no plan", "usd": 0.0}], columns=["item", "usd"])
    return hv.Bars(df, "item", "usd").opts(title="monthly cost by item", ylabel="$/month", xlabel="",
                                           height=260, responsive=True, tools=["hover"], color="#4c78a8")


def pricing_chart(plan=None):
    found = [] if plan is None or not plan.costs else rows.pricing_model_rows(plan)
    df = pd.DataFrame([{"pricing model": r["pricing_model"], "usd": r["monthly_usd"] or 0.0,
                        "chosen": "chosen" if r["chosen"] else "other"} for r in found]
                      or [{"pricing model": "no plan", "usd": 0.0, "chosen": "other"}],
                      columns=["pricing model", "usd", "chosen"])
    return hv.Bars(df, "pricing model", ["usd", "chosen"]).opts(
        title="the same placement at each pricing model", ylabel="$/month", xlabel="", color="chosen",
        cmap={"chosen": "#f58518", "other": "#9ecae9"}, height=260, responsive=True, tools=["hover"])


def _name_renderer(plot, element):
    """Name the frontier's glyph renderer: tests and benchmarks find its points by this name."""
    plot.handles["glyph_renderer"].name = "frontier-points"


def frontier_points(frontier=()):
    data = pd.DataFrame(rows.frontier_rows(list(frontier)) if frontier else [],
                        columns=["monthly_usd", "latency_ms", "placement", "meets_slo"])
    return hv.Scatter(data[["latency_ms", "monthly_usd", "placement"]], "latency_ms",
                      ["monthly_usd", "placement"]).opts(
        size=12, color="#4c78a8", tools=["tap", "hover"], nonselection_alpha=0.5, selection_color="#f58518",
        hooks=[_name_renderer], xlabel="p95 ms", ylabel="$/month", framewise=True)


def frontier_marks(outcome=None):
    """The solved plan (a red star) and its SLO (red) and budget (green) lines."""
    plan = outcome.plan if outcome is not None else None
    here = ([(plan.latency.p95_ms, plan.costs.monthly_usd)]
            if plan is not None and plan.latency and plan.costs else [])
    slo = plan.latency.slo_ms if plan is not None and plan.latency else 0
    budget = plan.budget_usd if plan is not None else 0
    return (hv.Points(here, ["latency_ms", "monthly_usd"]).opts(color="red", marker="star", size=18)
            * hv.VLine(slo).opts(color="red", line_dash="dashed")
            * hv.HLine(budget).opts(color="green", line_dash="dashed"))
