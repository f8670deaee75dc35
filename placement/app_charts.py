"""The app's charts and badges, drawn from report rows (`placement.rows`), so every number shown
is the one the CLI and the reports print.

The charts are Bokeh figures built once per page; a new plan or frontier replaces the data of
their `ColumnDataSource`s and moves their ranges. What reaches the browser is a patch of a few
columns, never a new figure (HoloViews' DynamicMaps, used before, re-rendered every element of
an overlay on the server: 1.5-3 s of the page's event loop per change on two loaded cores).
Each `*_data` function is a pure function of a plan (or a frontier), so a test can check it.
"""

from __future__ import annotations

import html

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, LabelSet, Range1d, Span
from bokeh.palettes import Category10_10, Category20_20
from bokeh.plotting import figure

from placement import rows

SOURCE_LABELS = {"measured-local": "measured here", "measured-rpc": "measured on a device",
                 "measured-served": "measured serving here", "imported": "imported"}
BADGE_COLOURS = {"measured here": "#d4edda", "measured on a device": "#d1ecf1", "tuned": "#e2d9f3",
                 "measured serving here": "#d4edda", "imported": "#fff3cd"}
KIND_LABELS = {"compute": "cloud compute", "edge-capex": "edge devices", "edge-power": "edge power",
               "egress": "egress"}
FRONTIER_RENDERER = "frontier-points"  # tests and benchmarks find the frontier's points by this name
SITE = "site (source / sink)"


def usd(x) -> str:
    return "—" if x is None else f"${x:,.2f}"


def badge(row: dict) -> str:
    """The provenance badge of a placed latency, in the issue's words."""
    if row["runtime"] == "tvm-tuned" and row["source"] in ("measured-local", "measured-rpc", "measured-served"):
        return "tuned"
    if row["source"] == "estimated":
        return rows.source_label("estimated", row["error_band"])
    return SOURCE_LABELS.get(row["source"], row["source"])


def headline_parts(plan) -> list[str]:
    """Status, $/month, $/year, $ per million requests, p95 against the SLO, the share of sites
    meeting it, the budget and the price date: the headline, as a list of short phrases."""
    h = rows.headline(plan)
    parts = [h["status_label"]]
    if h["monthly_usd"] is not None:
        parts += [f"{usd(h['monthly_usd'])}/month", f"{usd(h['annual_usd'])}/year",
                  f"{usd(h['usd_per_million_requests'])} per million requests"]
    if h["latency_ms"] is not None:
        mark = "≤" if h["meets_slo"] else ">"
        parts.append(f"p{h['percentile']} {h['latency_ms']:.1f} ms {mark} SLO {h['slo_ms']:g} ms")
        parts.append(f"{h['site_share_meeting_slo']:.0%} of sites meet it")
    parts.append(f"budget {usd(h['budget_usd'])}")
    parts.append(f"prices of {h['price_date']}")
    return parts


def headline_html(plan) -> str:
    status, *rest = [html.escape(x) for x in headline_parts(plan)]
    return " · ".join([f"<b>{status}</b>", *rest])


def place_label(p) -> str:
    if p.tier == "edge":
        return f"site device {p.instance_type}" + (f" ({p.segment})" if p.segment else "")
    if p.head is not None:
        return f"split: {p.head.device} → {p.region} {p.instance_type} ×{p.replicas}"
    return f"{p.provider} {p.region} {p.instance_type} ×{p.replicas}"


def _no_plan(plan) -> bool:
    return plan is None or not plan.placements


def _columns(records: list[dict], names: list[str]) -> dict[str, list]:
    return {n: [r[n] for r in records] for n in names}


def _span(values, pad: float = 0.08, floor: float | None = None) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    d = (hi - lo) or max(abs(hi), 1.0)
    lo, hi = lo - d * pad, hi + d * pad
    return (max(lo, floor) if floor is not None else lo), hi


# -- data: pure functions of a plan ---------------------------------------------------------------

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


def dataflow_data(plan=None) -> dict:
    """source → pieces → sink: nodes coloured by where they run, edges labelled with bytes and ms."""
    routes = [] if _no_plan(plan) else plan.routes
    depth = _layers(plan) if routes else {"source": 0, "sink": 1}
    by_layer: dict[int, list[str]] = {}
    for node, d in sorted(depth.items(), key=lambda kv: kv[1]):
        by_layer.setdefault(d, []).append(node)
    pos = {n: (d, i - (len(ns) - 1) / 2) for d, ns in by_layer.items() for i, n in enumerate(ns)}
    placed = {} if _no_plan(plan) else {p.piece: p for p in plan.placements}
    where = {n: place_label(placed[n]) if n in placed else SITE for n in pos}
    colours = {SITE: "#1f77b4"}
    for w in where.values():
        colours.setdefault(w, Category10_10[1:][(len(colours) - 1) % 9])
    nodes = [{"x": x, "y": y, "node": n, "where": where[n], "colour": colours[where[n]],
              "p95_ms": placed[n].latency_ms_p95 if n in placed else 0.0} for n, (x, y) in pos.items()]
    drawn = [r for r in routes if r.source in pos and r.target in pos]
    edges = [{"x0": pos[r.source][0], "y0": pos[r.source][1], "x1": pos[r.target][0], "y1": pos[r.target][1],
              "x": (pos[r.source][0] + pos[r.target][0]) / 2, "y": (pos[r.source][1] + pos[r.target][1]) / 2 + 0.12,
              "text": f"{r.bytes_per_request / 1000:,.0f} kB · {r.transfer_ms:.1f} ms"} for r in drawn]
    ys = [n["y"] for n in nodes]
    return {"nodes": _columns(nodes, ["x", "y", "node", "where", "colour", "p95_ms"]),
            "edges": _columns(edges, ["x0", "y0", "x1", "y1", "x", "y", "text"]),
            "x_range": (-0.4, max(depth.values(), default=1) + 0.4),
            "y_range": (min(ys) - 0.6, max(ys) + 0.6)}


def latency_data(plan=None) -> dict:
    """Per source → sink path (six at most): compute, transfer and wait of each piece, stacked."""
    bars: list[dict] = []
    if not _no_plan(plan):
        placed = {p.piece: p for p in plan.placements}
        into = {(r.source, r.target): r.transfer_ms for r in plan.routes}
        for i, (path, _total) in enumerate(rows.paths(plan)[:6]):
            name, bottom = f"path {i + 1}", 0.0
            parts = []
            for a, b in zip(path, path[1:]):
                if into.get((a, b)):
                    parts.append((f"transfer → {b}", into[(a, b)]))
                if b in placed:
                    p = placed[b]
                    parts.append((f"{b} compute", p.latency_ms_p95 - p.wait_ms))
                    if p.wait_ms > 0:
                        parts.append((f"{b} wait", p.wait_ms))
            for part, ms in parts:
                bars.append({"path": name, "part": part, "ms": ms, "bottom": bottom, "top": bottom + ms})
                bottom += ms
    names = list(dict.fromkeys(b["part"] for b in bars))
    for b in bars:
        b["colour"] = Category20_20[names.index(b["part"]) % 20]
    slo = plan.latency.slo_ms if plan is not None and plan.latency else 0.0
    paths = list(dict.fromkeys(b["path"] for b in bars)) or ["no plan"]
    return {"bars": _columns(bars, ["path", "part", "ms", "bottom", "top", "colour"]), "paths": paths,
            "slo": slo, "y_range": (0.0, max([b["top"] for b in bars] + [slo, 1.0]) * 1.1)}


def cost_data(plan=None) -> dict:
    by_kind = {} if plan is None or not plan.costs else rows.cost_by_kind(plan)
    items = [{"item": KIND_LABELS.get(k, k), "usd": v} for k, v in by_kind.items()]
    return {"bars": _columns(items, ["item", "usd"]), "items": [i["item"] for i in items] or ["no plan"],
            "y_range": (0.0, max([i["usd"] for i in items] + [1.0]) * 1.1)}


def pricing_data(plan=None) -> dict:
    found = [] if plan is None or not plan.costs else rows.pricing_model_rows(plan)
    bars = [{"model": r["pricing_model"], "usd": r["monthly_usd"] or 0.0,
             "chosen": "chosen" if r["chosen"] else "other",
             "colour": "#f58518" if r["chosen"] else "#9ecae9"} for r in found]
    return {"bars": _columns(bars, ["model", "usd", "chosen", "colour"]),
            "models": [b["model"] for b in bars] or ["no plan"],
            "y_range": (0.0, max([b["usd"] for b in bars] + [1.0]) * 1.1)}


def frontier_data(frontier=()) -> dict:
    found = rows.frontier_rows(list(frontier)) if frontier else []
    return _columns(found, ["latency_ms", "monthly_usd", "placement", "latency_label"])


def marks_data(outcome=None) -> dict:
    """The solved plan (a red star), its SLO (red) and its budget (green)."""
    plan = outcome.plan if outcome is not None else None
    here = plan is not None and plan.latency is not None and plan.costs is not None
    return {"star": {"latency_ms": [plan.latency.p95_ms] if here else [],
                     "monthly_usd": [plan.costs.monthly_usd] if here else []},
            "slo": plan.latency.slo_ms if plan is not None and plan.latency else None,
            "budget": plan.budget_usd if plan is not None else None}


# -- the figures ---------------------------------------------------------------------------------

class PlanCharts:
    """The page's five charts, each a Bokeh figure over sources that `show_*` refills in place."""

    def __init__(self):
        common = dict(toolbar_location=None, tools="")  # every tool is models to make and send
        # dataflow: source → pieces → sink
        self.nodes = ColumnDataSource(dataflow_data()["nodes"])
        self.edges = ColumnDataSource(dataflow_data()["edges"])
        self.dataflow = figure(title="dataflow: where each piece runs", width=500, height=320, toolbar_location=None,
                               tools="", x_range=Range1d(-0.4, 1.4), y_range=Range1d(-0.6, 0.6),
                               x_axis_type=None, y_axis_type=None, outline_line_color=None)
        self.dataflow.segment("x0", "y0", "x1", "y1", source=self.edges, color="#999", line_width=2)
        dots = self.dataflow.scatter("x", "y", source=self.nodes, size=34, color="colour", line_color="white",
                                     legend_field="where")
        self.dataflow.add_tools(HoverTool(renderers=[dots], tooltips=[("piece", "@node"), ("where", "@where"),
                                                                      ("p95 ms", "@p95_ms{0.0}")]))
        self.dataflow.add_layout(LabelSet(x="x", y="y", text="node", source=self.nodes, text_font_size="9pt",
                                          y_offset=-30, text_align="center"))
        self.dataflow.add_layout(LabelSet(x="x", y="y", text="text", source=self.edges, text_font_size="8pt",
                                          text_color="#555", text_align="center"))
        self.dataflow.legend.location = "bottom_left"
        # latency: per path, stacked parts against the SLO
        self.parts = ColumnDataSource(latency_data()["bars"])
        self.latency = figure(title="latency per path against the SLO (dashed)", height=300,
                              sizing_mode="stretch_width", x_range=FactorRange("no plan"), y_range=Range1d(0, 1),
                              y_axis_label="ms (p95 parts)", **common)
        bars = self.latency.vbar(x="path", bottom="bottom", top="top", width=0.6, source=self.parts, color="colour",
                                 line_color="white", legend_field="part")
        self.latency.add_tools(HoverTool(renderers=[bars], tooltips=[("part", "@part"), ("ms", "@ms{0.0}")]))
        self.latency_slo = Span(location=0, dimension="width", line_color="red", line_dash="dashed", line_width=2)
        self.latency.add_layout(self.latency_slo)
        self.latency.legend.location = "top_left"
        self.latency.legend.label_text_font_size = "8pt"
        # money: cost by item, and the same placement at each pricing model
        self.items = ColumnDataSource(cost_data()["bars"])
        self.costs = figure(title="monthly cost by item", height=260, sizing_mode="stretch_width",
                            x_range=FactorRange("no plan"), y_range=Range1d(0, 1), y_axis_label="$/month", **common)
        r = self.costs.vbar(x="item", top="usd", width=0.7, source=self.items, color="#4c78a8")
        self.costs.add_tools(HoverTool(renderers=[r], tooltips=[("item", "@item"), ("$/month", "@usd{0,0.00}")]))
        self.models = ColumnDataSource(pricing_data()["bars"])
        self.pricing = figure(title="the same placement at each pricing model", height=260,
                              sizing_mode="stretch_width", x_range=FactorRange("no plan"), y_range=Range1d(0, 1),
                              y_axis_label="$/month", **common)
        r = self.pricing.vbar(x="model", top="usd", width=0.7, source=self.models, color="colour",
                              legend_field="chosen")
        self.pricing.add_tools(HoverTool(renderers=[r], tooltips=[("pricing", "@model"), ("$/month", "@usd{0,0.00}")]))
        self.pricing.legend.location = "top_right"
        # the frontier: points to click, the solved plan, its SLO and budget
        self.points = ColumnDataSource(frontier_data())
        self.star = ColumnDataSource(marks_data()["star"])
        self.frontier = figure(title=self.frontier_title(),
                               height=320, sizing_mode="stretch_width", x_range=Range1d(0, 1), y_range=Range1d(0, 1),
                               x_axis_label="p95 ms", y_axis_label="$/month",
                               tools="tap,box_zoom,reset,save", toolbar_location="right")
        clickable = self.frontier.scatter("latency_ms", "monthly_usd", source=self.points, size=12, color="#4c78a8",
                                          selection_color="#f58518", nonselection_alpha=0.5, name=FRONTIER_RENDERER)
        self.frontier.add_tools(HoverTool(renderers=[clickable], tooltips=[
            ("placement", "@placement"), ("$/month", "@monthly_usd{0,0.00}"), ("p95 ms", "@latency_label")]))
        self.frontier.scatter("latency_ms", "monthly_usd", source=self.star, marker="star", size=18, color="red")
        self.frontier_slo = Span(location=0, dimension="height", line_color="red", line_dash="dashed", line_width=2)
        self.budget = Span(location=0, dimension="width", line_color="green", line_dash="dashed", line_width=2)
        self.frontier.add_layout(self.frontier_slo)
        self.frontier.add_layout(self.budget)
        self._marks = marks_data()
        for fig in (self.dataflow, self.latency, self.costs, self.pricing, self.frontier):
            for r in fig.renderers:  # no muting, and only the frontier's points are selectable
                r.muted_glyph = None
                if r is not clickable:
                    r.nonselection_glyph = None

    @staticmethod
    def frontier_title(note: str = "") -> str:
        return f"cost–latency frontier: {note}" if note else \
            "cost–latency frontier (click a point; red dashed: SLO, green: budget)"

    def show_plan(self, plan) -> None:
        """Every chart of one plan (the frontier's marks follow the solve: `show_marks`). Only
        what changed is set: a plan at another SLO often moves nothing but the SLO line."""
        d = dataflow_data(plan)
        _refill(self.nodes, d["nodes"])
        _refill(self.edges, d["edges"])
        _update(self.dataflow.x_range, start=d["x_range"][0], end=d["x_range"][1])
        _update(self.dataflow.y_range, start=d["y_range"][0], end=d["y_range"][1])
        d = latency_data(plan)
        _update(self.latency.x_range, factors=d["paths"])
        _refill(self.parts, d["bars"])
        _update(self.latency.y_range, start=d["y_range"][0], end=d["y_range"][1])
        _update(self.latency_slo, location=d["slo"])
        _update(self.latency.title, text=f"latency per path against the SLO ({d['slo']:g} ms, dashed)")
        d = cost_data(plan)
        _update(self.costs.x_range, factors=d["items"])
        _refill(self.items, d["bars"])
        _update(self.costs.y_range, start=d["y_range"][0], end=d["y_range"][1])
        d = pricing_data(plan)
        _update(self.pricing.x_range, factors=d["models"])
        _refill(self.models, d["bars"])
        _update(self.pricing.y_range, start=d["y_range"][0], end=d["y_range"][1])

    def show_frontier(self, frontier) -> None:
        self.points.selected.indices = []
        _refill(self.points, frontier_data(frontier))
        self._frontier_ranges()

    def show_marks(self, outcome) -> None:
        self._marks = marks_data(outcome)
        _refill(self.star, self._marks["star"])
        _update(self.frontier_slo, location=self._marks["slo"] or 0)
        _update(self.budget, location=self._marks["budget"] or 0)
        self._frontier_ranges()

    def _frontier_ranges(self) -> None:
        """Axes that hold every point, the star and both lines (a Span does not widen a range)."""
        m = self._marks
        xs = list(self.points.data["latency_ms"]) + m["star"]["latency_ms"] + [m["slo"]]
        ys = list(self.points.data["monthly_usd"]) + m["star"]["monthly_usd"] + [m["budget"]]
        x, y = _span(xs, floor=0.0), _span(ys, floor=0.0)
        _update(self.frontier.x_range, start=x[0], end=x[1])
        _update(self.frontier.y_range, start=y[0], end=y[1])


def _refill(source: ColumnDataSource, data: dict) -> None:
    """New columns for a source, unless they are what it holds (no patch, no redraw)."""
    if dict(source.data) != data:
        source.data = data


def _update(model, **values) -> None:
    changed = {k: v for k, v in values.items() if getattr(model, k) != v}
    if changed:
        model.update(**changed)
