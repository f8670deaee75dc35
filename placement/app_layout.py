"""The app's layout: widgets from `AppState`'s params, charts from report rows. Layout only.

`app.py` at the repository root imports `PlacementApp` and serves it (`panel serve app.py`);
`placement app` serves the same from an installed package. Every number shown comes from
`placement.rows` (the rows the CLI and the Markdown summary render), every action from the state.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn
import param

from placement import rows
from placement.app_charts import (
    BADGE_COLOURS,
    badge,
    cost_chart,
    dataflow_chart,
    frontier_marks,
    frontier_points,
    headline_text,
    latency_chart,
    pricing_chart,
    usd,
)
from placement.app_state import AppState

pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")
hv.extension("bokeh", logo=False)
# Canvas, not WebGL: a few dozen glyphs per chart draw faster on a 2-D canvas, and a browser
# without a GPU (headless, remote desktops) emulates WebGL slowly in software.
hv.renderer("bokeh").webgl = False

def on_event_loop(doc, delay_ms: int = 0):
    """Run a callback on the session's event loop, holding its document lock: the worker's
    results change widgets and plots only there (HoloViews plots are not thread-safe)."""
    from panel.io.state import set_curdoc

    def publish(fn) -> None:
        def run() -> None:
            with set_curdoc(doc):
                fn()

        with contextlib.suppress(Exception):  # the session is gone: nobody to show it to
            if delay_ms:
                doc.add_timeout_callback(run, delay_ms)
            else:
                doc.add_next_tick_callback(run)

    return publish


PLACEMENT_COLUMNS = ["piece", "where", "replicas", "runtime", "batch", "p95 ms", "compute ms", "wait ms",
                     "utilisation", "latency from", "$/month"]
FRONTIER_COLUMNS = ["monthly_usd", "latency_label", "usd_per_ms_saved", "meets_slo", "placement", "latency_from"]
BASELINE_COLUMNS = ["name", "monthly_usd", "latency_ms", "feasible", "note", "this_plan"]


# -- the page -----------------------------------------------------------------------------------

class PlacementApp(pn.viewable.Viewer):
    """The whole decision on one page over one `AppState`."""

    state = param.ClassSelector(class_=AppState)
    # What the charts show: the state's plan and outcome, a tick later, so that the headline and
    # the table reach the browser before the charts are recomputed.
    chart_plan = param.Parameter(default=None)
    chart_outcome = param.Parameter(default=None)

    def __init__(self, state: AppState | None = None, **params):
        super().__init__(state=state or AppState(), **params)
        s = self.state
        doc = pn.state.curdoc
        served = doc is not None and doc.session_context is not None
        if served:
            s.publish = on_event_loop(doc)
        # charts a moment after the headline: the loop sends the headline before it draws them
        self._later = on_event_loop(doc, delay_ms=40) if served else (lambda fn: fn())
        self.headline = pn.pane.Markdown("Loading…", css_classes=["headline"], name="headline",
                                         styles={"font-size": "1.15em"})
        self.busy = pn.indicators.LoadingSpinner(value=False, size=22, name="")
        self.activity = pn.pane.Str("", styles={"color": "#666"})
        self.progress = pn.Column(visible=False)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["app-error"])
        self.notes = pn.pane.Alert("", alert_type="info", visible=False)
        # Each chart is a DynamicMap over the state's params: a new plan updates the plots' data
        # in place (small patches), instead of sending whole new figures to the browser.
        def over(fn, source, name):  # framewise: every new plan rescales its axes
            return hv.DynamicMap(lambda **kw: fn(kw[name]),
                                 streams=[hv.streams.Params(source, [name])]).opts(framewise=True)

        # the dataflow picture is redrawn whole: its node layout changes with the plan
        self.graph = pn.pane.HoloViews(dataflow_chart(None), width=510, height=330, sizing_mode="fixed")
        # A table enters the page with its first rows (its slot is empty until then): new columns
        # reach a browser's Tabulator as setColumns, which throws when it has not yet built the
        # table (seen in CI on a loaded machine). Fixed columns keep later updates to rows only.
        self.placement_table = pn.widgets.Tabulator(pd.DataFrame(columns=PLACEMENT_COLUMNS), disabled=True, show_index=False,
                                                    layout="fit_data_table", css_classes=["placement-table"])
        self.latency = pn.pane.HoloViews(over(latency_chart, self, "chart_plan"), sizing_mode="stretch_width", min_height=300)
        self.costs = pn.pane.HoloViews(over(cost_chart, self, "chart_plan"), sizing_mode="stretch_width")
        self.pricing = pn.pane.HoloViews(over(pricing_chart, self, "chart_plan"), sizing_mode="stretch_width")
        points = over(frontier_points, s, "frontier")
        self._selection = hv.streams.Selection1D(source=points)
        self._selection.add_subscriber(self._frontier_clicked)
        chart = (points * over(frontier_marks, self, "chart_outcome")).opts(
            title="cost–latency frontier (click a point; red dashed: SLO, green: budget)", height=320,
            responsive=True, framewise=True)
        self.frontier = pn.pane.HoloViews(chart, sizing_mode="stretch_width", min_height=320,
                                          css_classes=["frontier"])
        self.frontier_table = pn.widgets.Tabulator(pd.DataFrame(columns=FRONTIER_COLUMNS), disabled=True, show_index=False,
                                                   layout="fit_data_table", height=220)
        self.baselines = pn.widgets.Tabulator(pd.DataFrame(columns=BASELINE_COLUMNS), disabled=True, show_index=False,
                                              layout="fit_data_table")
        self.savings = pn.pane.Markdown("")
        self.explanation = pn.Column(visible=False, css_classes=["explanation"])
        self.offers = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, header_filters=True,
                                           pagination="remote", page_size=15, layout="fit_data_table")
        self.profiles = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, header_filters=True,
                                             pagination="remote", page_size=15, layout="fit_data_table")
        self.placement_table.style.map(  # once: Panel re-applies a Styler's steps to every new value
            lambda v: f"background-color: {BADGE_COLOURS.get(v, '#f8d7da' if str(v).startswith('estimated') else '')}",
            subset=["latency from"])
        self._table_slots = {t: pn.Column(sizing_mode="stretch_width", margin=0)
                             for t in (self.placement_table, self.frontier_table, self.baselines)}
        self.rtt_box = pn.Column()
        self.discount_box = pn.Column()
        self.tune_box = pn.Column()
        s.param.watch(self._show_plan, ["plan"])
        s.param.watch(self._later_charts, ["plan", "outcome"])
        # the frontier chart is rebuilt for a new solve or frontier, not for a clicked point (a
        # rebuilt plot would drop the selection the click just made)
        s.param.watch(self._show_frontier, ["frontier"])
        s.param.watch(self._show_frontier_choice, ["frontier_index"])
        self.frontier_table.on_click(lambda e: s.select_frontier(e.row))
        s.param.watch(self._show_busy, ["busy", "activity"])
        s.param.watch(self._show_progress, ["progress"])
        s.param.watch(self._show_error, ["errors", "error"])
        s.param.watch(self._show_notice, ["notice"])
        s.param.watch(self._show_tables, ["offers", "profiles"])
        s.param.watch(self._show_network, ["rtt_ms", "discount_percent"])
        s.param.watch(self._show_tuning, ["tuning", "profiles"])
        self._show_network()
        self._show_tuning()

    # -- inputs ---------------------------------------------------------------------------------

    def _sidebar(self):
        s = self.state
        upload = pn.widgets.FileInput(multiple=True, accept=".yaml,.yml,.onnx,.zip,.csv", label="upload")
        upload.param.watch(lambda e: self._upload(upload), "value")
        w = pn.widgets
        return pn.Column(
            pn.pane.Markdown("### Application"),
            w.Select.from_param(s.param.example, label="bundled example"),
            pn.pane.Markdown("or upload a spec (YAML) with its ONNX files, or one zip:",
                             styles={"font-size": "0.9em"}),
            upload,
            pn.pane.Markdown("### SLO and budget"),
            w.FloatInput.from_param(s.param.slo_ms, label="SLO (ms)", css_classes=["slo-input"]),
            w.Select.from_param(s.param.percentile, label="percentile"),
            w.FloatInput.from_param(s.param.min_site_share, label="share of sites meeting it", step=0.05),
            w.FloatInput.from_param(s.param.budget_usd, label="monthly budget ($)", step=100,
                                    css_classes=["budget-input"]),
            w.RadioButtonGroup.from_param(s.param.objective, label="objective"),
            pn.pane.Markdown("### Load and network"),
            w.IntInput.from_param(s.param.sites, label="sites"),
            w.FloatInput.from_param(s.param.rate_per_site_rps, label="requests/s per site", step=0.5),
            w.FloatInput.from_param(s.param.uplink_mbps, label="uplink (Mbit/s)", step=1),
            w.FloatInput.from_param(s.param.downlink_mbps, label="downlink (Mbit/s)", step=1),
            self.rtt_box,
            pn.pane.Markdown("### Prices"),
            w.Select.from_param(s.param.pricing_model, label="pricing model"),
            self.discount_box,
            w.Select.from_param(s.param.estimated_latency, label="estimated latencies"),
            pn.pane.Markdown("### Candidates"),
            w.MultiChoice.from_param(s.param.edge_devices, label="edge devices"),
            w.MultiChoice.from_param(s.param.providers, label="cloud providers"),
            w.MultiChoice.from_param(s.param.regions, label="regions"),
            w.MultiChoice.from_param(s.param.instance_types, label="instance types", max_items=60),
        )

    def _upload(self, widget) -> None:
        if not widget.value:
            return
        values = widget.value if isinstance(widget.value, list) else [widget.value]
        names = widget.filename if isinstance(widget.filename, list) else [widget.filename]
        self.state.upload(dict(zip(names, values)))

    def _show_network(self, *events) -> None:
        s = self.state

        def rtt_input(region, value):
            box = pn.widgets.FloatInput(label=f"RTT to {region} (ms)", value=float(value), start=0, step=5)
            box.param.watch(lambda e: s.param.update(rtt_ms={**s.rtt_ms, region: e.new}), "value")
            return box

        def discount_input(provider, value):
            box = pn.widgets.FloatInput(label=f"{provider} discount (%)", value=float(value), start=0, end=99, step=5)
            box.param.watch(lambda e: s.param.update(discount_percent={**s.discount_percent, provider: e.new}),
                            "value")
            return box

        rtt_keys = [b.label for b in self.rtt_box]
        if rtt_keys != [f"RTT to {r} (ms)" for r in s.rtt_ms]:
            self.rtt_box.objects = [rtt_input(r, v) for r, v in s.rtt_ms.items()]
        else:
            for box, v in zip(self.rtt_box, s.rtt_ms.values()):
                box.value = float(v)
        if [b.label for b in self.discount_box] != [f"{p} discount (%)" for p in s.discount_percent]:
            self.discount_box.objects = [discount_input(p, v) for p, v in s.discount_percent.items()]
        else:
            for box, v in zip(self.discount_box, s.discount_percent.values()):
                box.value = float(v)

    # -- what the page shows --------------------------------------------------------------------

    def _show_plan(self, *events) -> None:
        plan = self.state.plan
        if plan is None:
            return
        self.headline.object = headline_text(plan)
        table = pd.DataFrame(rows.plan_rows(plan))
        if not table.empty:
            table["latency from"] = [badge(r) for r in rows.plan_rows(plan)]
            table["$/month"] = [usd(r["monthly_usd"]) if r["monthly_usd"] is not None else r["cost_note"]
                                for r in rows.plan_rows(plan)]
            table = table.rename(columns={"p95_ms": "p95 ms", "compute_ms": "compute ms", "wait_ms": "wait ms"})
            table = table[PLACEMENT_COLUMNS].round(2)
        else:
            table = pd.DataFrame(columns=PLACEMENT_COLUMNS)
        self._fill(self.placement_table, table)
        base = rows.baseline_rows(plan)
        self._fill(self.baselines, pd.DataFrame(base, columns=BASELINE_COLUMNS).round(2))
        saved = [b for b in base if not b["this_plan"] and b["feasible"] and b["monthly_usd"]]
        if saved and plan.costs:
            best = min(saved, key=lambda b: b["monthly_usd"])
            gain = best["monthly_usd"] - plan.costs.monthly_usd
            self.savings.object = (
                f"The optimiser saves **{usd(gain)}/month** against the cheapest feasible baseline ({best['name']})."
                if gain > 0.005 else f"The cheapest feasible baseline ({best['name']}) is this plan.")
        else:
            self.savings.object = ""
        self._show_explanation(plan)

    def _fill(self, table, value: pd.DataFrame) -> None:
        table.value = value
        slot = self._table_slots[table]
        if not slot.objects:
            slot.objects = [table]

    def _later_charts(self, *events) -> None:
        plan, outcome = self.state.plan, self.state.outcome
        def draw() -> None:
            self.param.update(chart_plan=plan, chart_outcome=outcome)
            self.graph.object = dataflow_chart(plan)

        self._later(draw)

    def _show_explanation(self, plan) -> None:
        e = plan.explanation
        if e is None or plan.feasible:
            self.explanation.visible = False
            self.explanation.objects = []
            return
        items = [pn.pane.Markdown("### Why there is no plan\n" + "\n".join(f"- {m}" for m in e.messages)
                                  + (f"\n\nBinding: {', '.join(e.binding)}" if e.binding else ""))]
        for label, name, value in self.state.suggestions():
            button = pn.widgets.Button(label=f"Apply: {label}", color="primary")
            button.on_click(lambda _e, n=name, v=value: self.state.apply_suggestion(n, v))
            items.append(button)
        self.explanation.objects = items
        self.explanation.visible = True

    def _show_frontier(self, *events) -> None:
        s = self.state
        table = pd.DataFrame(rows.frontier_rows(s.frontier) if s.frontier else [])
        self._fill(self.frontier_table, table.reindex(columns=FRONTIER_COLUMNS).round(2))

    def _show_frontier_choice(self, *events) -> None:
        i = self.state.frontier_index
        self.frontier_table.selection = [] if i is None else [i]

    def _frontier_clicked(self, index=None, **_kw) -> None:
        self.state.select_frontier(index[0] if index else None)

    def _show_busy(self, *events) -> None:
        s = self.state
        self.busy.value = s.busy
        self.activity.object = s.activity if s.busy else f"source: {s.source}"

    def _show_progress(self, *events) -> None:
        p = self.state.progress
        if not p:
            self.progress.visible = False
            return
        bars = []
        for piece, e in sorted(p.items()):
            bars.append(pn.Row(pn.pane.Str(f"{piece}: {e['step']} {e['runtime']}", width=260),
                               pn.indicators.Progress(value=int(e["done"]), max=max(1, int(e["total"])),
                                                      width=300)))
        self.progress.objects = [pn.pane.Markdown("**Profiling**")] + bars
        self.progress.visible = self.state.busy

    def _show_error(self, *events) -> None:
        message = self.state.error
        if not message:
            self.alert.visible = False
            return
        self.alert.object = message
        self.alert.visible = True
        if any(e.name == "errors" for e in events) and pn.state.notifications is not None:
            pn.state.notifications.error(message, duration=10000)

    def _show_notice(self, *events) -> None:
        if self.state.notice:
            self.notes.object = self.state.notice
            self.notes.visible = True

    def _show_tables(self, *events) -> None:
        s = self.state
        if s.offers is not None:
            cols = ["offer", "tier", "provider", "region", "instance_type", "hardware", "vcpus", "memory_gib",
                    "accelerator", "hourly_usd", "spot_hourly_usd", "reserved_1y_hourly_usd",
                    "reserved_3y_hourly_usd", "unit_usd", "power_w", "price_source", "price_date"]
            self.offers.value = s.offers[[c for c in cols if c in s.offers]].reset_index(drop=True)
        if s.profiles is not None:
            self.profiles.value = s.profiles.reset_index(drop=True).round(3)

    # -- actions --------------------------------------------------------------------------------

    def _downloads(self):
        s = self.state

        def text(fn):
            return lambda: io.StringIO(fn())

        return pn.Row(
            pn.widgets.FileDownload(callback=text(s.plan_json), filename="plan.json", label="plan.json",
                                    color="primary", css_classes=["download-plan"]),
            pn.widgets.FileDownload(callback=text(s.summary_markdown), filename="summary.md", label="summary.md"),
            pn.widgets.FileDownload(callback=text(s.profiles_csv_text), filename="profiles.csv",
                                    label="profiles.csv"),
            pn.widgets.FileDownload(callback=text(s.report_html), filename="report.html",
                                    label="procurement report", css_classes=["download-report"]),
            sizing_mode="stretch_width")

    def _show_tuning(self, *events) -> None:
        s = self.state
        pieces, hardware = s.tunable()
        t = s.tuning
        if not pieces or not hardware:
            self.tune_box.objects = [pn.pane.Markdown(
                "Tuning needs the spec's ONNX files and a hardware class measured on this machine.")]
            return
        if self.tune_box.objects and getattr(self, "_tune_widgets", None) is not None:
            self._tune_status.object = self._tuning_text(t)
            return
        piece = pn.widgets.Select(label="piece", options=pieces)
        hw = pn.widgets.Select(label="hardware", options=hardware)
        budget = pn.widgets.FloatInput(label="budget (s)", value=300, start=10, step=60)
        start = pn.widgets.Button(label="Start tuning", color="primary")
        cancel = pn.widgets.Button(label="Cancel", color="warning")
        start.on_click(lambda _e: s.start_tuning(piece.value, hw.value, budget.value))
        cancel.on_click(lambda _e: s.cancel_tuning())
        self._tune_widgets = (piece, hw, budget)
        self._tune_status = pn.pane.Markdown(self._tuning_text(t))
        self.tune_box.objects = [pn.Row(piece, hw, budget), pn.Row(start, cancel), self._tune_status]

    @staticmethod
    def _tuning_text(t: dict) -> str:
        if not t:
            return "No tuning job."
        done = f"{t.get('trials_done', 0)} of {t.get('trials_planned', 0)} trials" if t.get("trials_planned") else ""
        left = f"{t['time_left_s']:.0f} s left" if t.get("time_left_s") is not None else ""
        return f"**{t['piece']} on {t['hardware']}**: {t['phase']} " + " · ".join(x for x in (done, left) if x)

    def __panel__(self):
        return self.template()

    def main(self):
        s = self.state
        refresh = pn.widgets.Button(label="Refresh prices", color="default")
        refresh.on_click(lambda _e: s.refresh_prices())
        card = dict(sizing_mode="stretch_width", margin=(5, 5))
        return pn.Column(
            pn.Row(self.busy, self.activity),
            self.alert, self.notes, self.progress,
            self.headline,
            self._downloads(),
            self.explanation,
            pn.Card(pn.Row(pn.Column(self.graph, width=520, height=340, sizing_mode="fixed"),
                           self._table_slots[self.placement_table]),
                    title="Placement (every latency badged with where it comes from)", **card),
            pn.Row(pn.Card(self.frontier, title="Cost–latency frontier", **card),
                   pn.Card(self.latency, title="Latency", **card)),
            pn.Row(pn.Card(self.costs, title="Money", **card), pn.Card(self.pricing, title="Pricing models", **card)),
            pn.Card(pn.Column(self.savings, self._table_slots[self.baselines]), title="Baselines", **card),
            pn.Tabs(("Frontier points", self._table_slots[self.frontier_table]), ("Offers", pn.Column(refresh, self.offers)),
                    ("Profiles", self.profiles), ("Tuning", self.tune_box), dynamic=True),
        )

    def template(self):
        # Bootstrap, not Fast: Fast's design fetches a web font from Google, which an offline
        # machine cannot reach (a console error and seconds of waiting on every page load)
        return pn.template.BootstrapTemplate(
            title="placement-optimizer: where each model runs", sidebar=[self._sidebar()], main=[self.main()],
            sidebar_width=330, header_background="#4c78a8")


def create_app(spec: str | Path | None = None, *, offers_csv=None, profiles_csv=None, **limits) -> PlacementApp:
    """A page for one session: the given spec (or $PLACEMENT_APP_SPEC, or the bundled demo), with
    optional offers / profiles CSVs ($PLACEMENT_APP_OFFERS, $PLACEMENT_APP_PROFILES); `limits`:
    the upload caps (`max_file_mb`, `max_total_mb`)."""
    from placement import api

    spec = spec or os.environ.get("PLACEMENT_APP_SPEC") or api.demo_spec_path()
    offers_csv = offers_csv or os.environ.get("PLACEMENT_APP_OFFERS") or None
    profiles_csv = profiles_csv or os.environ.get("PLACEMENT_APP_PROFILES") or None
    state = AppState(offers_csv=offers_csv, profiles_csv=profiles_csv, **limits)
    app = PlacementApp(state)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(lambda _ctx: state.close())
    state.start(spec)
    return app
