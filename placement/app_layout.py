"""The app's layout: widgets from `AppState`'s params, charts from report rows. Layout only.

`app.py` at the repository root imports `PlacementApp` and serves it (`panel serve app.py`);
`placement app` serves the same from an installed package. Every number shown comes from
`placement.rows` (the rows the CLI and the Markdown summary render), every action from the state.
"""

from __future__ import annotations

import asyncio
import html
import io
import os
from pathlib import Path

import pandas as pd
import panel as pn
import param
from bokeh.models import Div

from placement import rows
from placement.app_charts import BADGE_COLOURS, PlanCharts, badge, headline_html, usd
from placement.app_session import EventLoop, OptionalDownload, Page
from placement.app_state import AppState

pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")

PLACEMENT_COLUMNS = ["piece", "where", "replicas", "runtime", "batch", "p95 ms", "compute ms", "wait ms",
                     "utilisation", "latency from", "$/month"]
FRONTIER_COLUMNS = ["monthly_usd", "latency_label", "usd_per_ms_saved", "meets_slo", "placement", "latency_from"]
BASELINE_COLUMNS = ["name", "monthly_usd", "latency_ms", "feasible", "note", "this_plan"]


# -- the page -----------------------------------------------------------------------------------

class PlacementApp(pn.viewable.Viewer):
    """The whole decision on one page over one `AppState`."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, state: AppState | None = None, **params):
        super().__init__(state=state or AppState(), **params)
        s = self.state
        doc = pn.state.curdoc
        served = doc is not None and doc.session_context is not None
        self.loop = None
        if served:  # (create_app makes the loop first, to start planning while this is built)
            loop = s.publish if isinstance(s.publish, EventLoop) else EventLoop(doc)
            s.publish = self._later = self.loop = loop
            # the analysis and the frontier wait for the page to be in the browser: made and
            # serialised meanwhile, it is the first full page's longest step
            s.hold_analysis(True)
            pn.state.onload(lambda: s.hold_analysis(False))
        else:  # tables and charts on a later turn of the loop: the headline's patch leaves first
            self._later = lambda fn: fn()
        self._shown = None  # the plan whose placement the page shows
        # The headline and the status line are Bokeh Divs: a new text is a string patch. A Panel
        # pane re-sends its style sheets with every update, and Bokeh then re-walks the whole
        # document for new models (0.1-0.4 s of the loop per update on two loaded cores).
        self._headline = Div(text="Loading…", css_classes=["headline"], styles={"font-size": "1.15em"},
                             sizing_mode="stretch_width")
        self.headline = pn.pane.Bokeh(self._headline, sizing_mode="stretch_width")
        self._status = Div(text="", styles={"color": "#666", "font-family": "monospace", "font-size": "0.85em"})
        self.status = pn.pane.Bokeh(self._status)
        self.progress = pn.Column(visible=False)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["app-error"])
        self.notes = pn.pane.Alert("", alert_type="info", visible=False)
        # Bokeh figures built once; a new plan refills their data sources (small patches)
        self.charts = PlanCharts()
        self.graph = pn.pane.Bokeh(self.charts.dataflow, width=510, height=330, sizing_mode="fixed")
        # A table enters the page with its first rows (its slot is empty until then): new columns
        # reach a browser's Tabulator as setColumns, which throws when it has not yet built the
        # table (seen in CI on a loaded machine). Fixed columns keep later updates to rows only.
        # (badges are HTML cells: a pandas Styler re-rendered on every plan cost 0.3-0.7 s of the loop)
        self.placement_table = pn.widgets.Tabulator(pd.DataFrame(columns=PLACEMENT_COLUMNS), disabled=True, show_index=False,
                                                    layout="fit_data_table", css_classes=["placement-table"],
                                                    formatters={"latency from": {"type": "html"}})
        self.latency = pn.pane.Bokeh(self.charts.latency, sizing_mode="stretch_width", min_height=300)
        self.costs = pn.pane.Bokeh(self.charts.costs, sizing_mode="stretch_width")
        self.pricing = pn.pane.Bokeh(self.charts.pricing, sizing_mode="stretch_width")
        self._selecting = False  # the page itself moving the frontier's selection
        self.charts.points.selected.on_change("indices", self._frontier_clicked)
        # (a Bokeh pane renders the figure itself: the class that tests find it by is on a Column)
        self.frontier = pn.Column(pn.pane.Bokeh(self.charts.frontier, sizing_mode="stretch_width", min_height=320),
                                  css_classes=["frontier"], sizing_mode="stretch_width", margin=0)
        self.frontier_table = pn.widgets.Tabulator(pd.DataFrame(columns=FRONTIER_COLUMNS), disabled=True, show_index=False,
                                                   layout="fit_data_table", height=220)
        self.baselines = pn.widgets.Tabulator(pd.DataFrame(columns=BASELINE_COLUMNS), disabled=True, show_index=False,
                                              layout="fit_data_table")
        self._savings = Div(text="", sizing_mode="stretch_width")
        self.savings = pn.pane.Bokeh(self._savings, sizing_mode="stretch_width")
        self.explanation = pn.Column(visible=False, css_classes=["explanation"])
        self.offers = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, header_filters=True,
                                           pagination="remote", page_size=15, layout="fit_data_table")
        self.profiles = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, header_filters=True,
                                             pagination="remote", page_size=15, layout="fit_data_table")
        self._table_slots = {t: pn.Column(sizing_mode="stretch_width", margin=0)
                             for t in (self.placement_table, self.frontier_table, self.baselines, self.offers,
                                       self.profiles)}
        self.bundle_button = OptionalDownload(callback=self._bundle, filename="bundle.zip",
                                              label="deployer bundle (zip)", css_classes=["download-bundle"])
        self.rtt_box = pn.Column()
        self.discount_box = pn.Column()
        self.tune_box = pn.Column()
        s.param.watch(self._show_plan, ["plan"])
        s.param.watch(self._show_marks, ["outcome"])
        s.param.watch(self._show_frontier, ["frontier"])
        s.param.watch(self._show_frontier_note, ["frontier_note"])
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
        """The headline at once; the tables and charts on the loop's next turns. The analysed
        copy of a plan shown (the same placement, with baselines) updates the baselines only."""
        plan = self.state.plan
        if plan is None:
            return
        if self._shown is not None and _same_placement(self._shown, plan):
            self._shown = plan
            self._later(lambda: self._show_analysis(plan))
            return
        self._shown = plan
        self._headline.text = headline_html(plan)
        self._later(lambda: self._show_placement(plan))

    def _current(self, plan) -> bool:
        """Still the placement shown (or its analysed copy): a newer one skips what is queued."""
        return self._shown is plan or (self._shown is not None and _same_placement(self._shown, plan))

    def _show_placement(self, plan) -> None:
        if not self._current(plan):
            return
        table = pd.DataFrame(rows.plan_rows(plan))
        if not table.empty:
            table["latency from"] = [badge_html(badge(r)) for r in rows.plan_rows(plan)]
            table["$/month"] = [usd(r["monthly_usd"]) if r["monthly_usd"] is not None else r["cost_note"]
                                for r in rows.plan_rows(plan)]
            table = table.rename(columns={"p95_ms": "p95 ms", "compute_ms": "compute ms", "wait_ms": "wait ms"})
            table = table[PLACEMENT_COLUMNS].round(2)
        else:
            table = pd.DataFrame(columns=PLACEMENT_COLUMNS)
        self._fill(self.placement_table, table)
        if self.bundle_button.disabled == plan.feasible:  # only a feasible plan has a bundle
            self.bundle_button.disabled = not plan.feasible
        self._later(lambda: self._show_charts(plan))

    def _show_charts(self, plan) -> None:
        if self._current(plan):
            self.charts.show_plan(plan)
            self._show_analysis(self._shown)

    def _show_analysis(self, plan) -> None:
        if plan is not self._shown:
            return
        base = rows.baseline_rows(plan)
        self._fill(self.baselines, pd.DataFrame(base, columns=BASELINE_COLUMNS).round(2))
        saved = [b for b in base if not b["this_plan"] and b["feasible"] and b["monthly_usd"]]
        if saved and plan.costs:
            best = min(saved, key=lambda b: b["monthly_usd"])
            gain = best["monthly_usd"] - plan.costs.monthly_usd
            self._savings.text = (
                f"The optimiser saves <b>{usd(gain)}/month</b> against the cheapest feasible baseline "
                f"({html.escape(best['name'])})." if gain > 0.005
                else f"The cheapest feasible baseline ({html.escape(best['name'])}) is this plan.")
        else:
            self._savings.text = ""
        self._show_explanation(plan)

    def _fill(self, table, value: pd.DataFrame) -> None:
        """A table's new rows (only if they changed: every Panel update re-walks the document)."""
        if table.value is None or not table.value.equals(value):
            table.value = value
        slot = self._table_slots[table]
        if not slot.objects:
            slot.objects = [table]

    def _show_marks(self, *events) -> None:
        outcome = self.state.outcome
        self._later(lambda: self.charts.show_marks(outcome) if outcome is self.state.outcome else None)

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
        frontier = s.frontier
        self._selecting = True
        try:
            self.charts.show_frontier(frontier)
        finally:
            self._selecting = False
        table = pd.DataFrame(rows.frontier_rows(frontier) if frontier else [])
        self._fill(self.frontier_table, table.reindex(columns=FRONTIER_COLUMNS).round(2))

    def _show_frontier_note(self, *events) -> None:
        self.charts.frontier.title.text = self.charts.frontier_title(self.state.frontier_note)

    def _show_frontier_choice(self, *events) -> None:
        i = self.state.frontier_index
        self.frontier_table.selection = [] if i is None else [i]
        self._selecting = True
        try:
            self.charts.points.selected.indices = [] if i is None else [i]
        finally:
            self._selecting = False

    def _frontier_clicked(self, _attr, _old, new) -> None:
        """A click on the frontier chart (Bokeh's selection of its points), handled on the
        loop's next turn, as Panel handles its own widgets' events: models changed while Bokeh
        applies the browser's patch (a table's new selection) reached the browser as references
        it never received ("reference … isn't known", seen in the console test)."""
        if not self._selecting:
            index = new[0] if new else None
            self._later(lambda: self.state.select_frontier(index))

    def _show_busy(self, *events) -> None:
        s = self.state
        self._status.text = html.escape(f"⟳ {s.activity or 'working'}…" if s.busy else f"source: {s.source}")

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
            self._fill(self.offers, s.offers[[c for c in cols if c in s.offers]].reset_index(drop=True))
        if s.profiles is not None:
            self._fill(self.profiles, s.profiles.reset_index(drop=True).round(3))

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
            self.bundle_button,
            sizing_mode="stretch_width")

    async def _bundle(self):
        """The bundle is exported off the event loop (TVM pieces compile: the page goes on)."""
        s = self.state
        s.notice = "building the deployer bundle of the plan shown…"
        data = await asyncio.to_thread(s.bundle_download)
        if data is None:
            return None
        s.notice = f"deployer bundle: {len(data) / 2**20:.1f} MiB (placement export writes the same folder)"
        return io.BytesIO(data)

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
        lower = [
            pn.Card(self._table_slots[self.frontier_table], title="Frontier points (click a row to show its plan)",
                    **card),
            pn.Row(pn.Card(self.costs, title="Money", **card), pn.Card(self.pricing, title="Pricing models", **card)),
            pn.Card(pn.Column(self.savings, self._table_slots[self.baselines]), title="Baselines", **card),
            # dynamic: a tab is built when it is opened (the offer table is a few hundred models)
            pn.Tabs(("Tuning", self.tune_box), ("Offers", pn.Column(refresh, self._table_slots[self.offers])),
                    ("Profiles", self._table_slots[self.profiles]), dynamic=True),
        ]
        # All of it is in the first page. (Sent after the page loaded, the lower cards came as
        # one Panel patch while their charts' data went as Bokeh patches, which could arrive
        # first: "reference … isn't known" in the console.)
        return pn.Column(
            self.status,
            self.alert, self.notes, self.progress,
            self.headline,
            self._downloads(),
            self.explanation,
            pn.Card(pn.Row(pn.Column(self.graph, width=520, height=340, sizing_mode="fixed"),
                           self._table_slots[self.placement_table]),
                    title="Placement (every latency badged with where it comes from)", **card),
            pn.Row(pn.Card(self.frontier, title="Cost–latency frontier", **card),
                   pn.Card(self.latency, title="Latency", **card)),
            *lower,
        )

    def template(self):
        # Bootstrap, not Fast: Fast's design fetches a web font from Google, which an offline
        # machine cannot reach (a console error and seconds of waiting on every page load)
        return Page(title="placement-optimizer: where each model runs", sidebar=[self._sidebar()], main=[self.main()],
                    sidebar_width=330, header_background="#4c78a8")


def badge_html(label: str) -> str:
    colour = BADGE_COLOURS.get(label, "#f8d7da" if label.startswith("estimated") else "#eee")
    return f'<span style="background-color:{colour};padding:1px 6px;border-radius:3px">{html.escape(label)}</span>'


def _same_placement(a, b) -> bool:
    """The same plan but for its analysis (baselines, slack, explanation): all the headline,
    the table and the charts show is equal."""
    return (a.placements == b.placements and a.routes == b.routes and a.costs == b.costs
            and a.latency == b.latency and a.status == b.status and a.solver == b.solver
            and a.budget_usd == b.budget_usd and a.provenance == b.provenance)


def create_app(spec: str | Path | None = None, *, offers_csv=None, profiles_csv=None, **limits) -> PlacementApp:
    """A page for one session: the given spec (or $PLACEMENT_APP_SPEC, or the bundled demo), with
    optional offers / profiles CSVs ($PLACEMENT_APP_OFFERS, $PLACEMENT_APP_PROFILES); `limits`:
    the upload caps (`max_file_mb`, `max_total_mb`)."""
    from placement import api

    spec = spec or os.environ.get("PLACEMENT_APP_SPEC") or api.demo_spec_path()
    offers_csv = offers_csv or os.environ.get("PLACEMENT_APP_OFFERS") or None
    profiles_csv = profiles_csv or os.environ.get("PLACEMENT_APP_PROFILES") or None
    state = AppState(offers_csv=offers_csv, profiles_csv=profiles_csv, **limits)
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.on_session_destroyed(lambda _ctx: state.close())
        state.publish = EventLoop(doc)  # results queue up there until the page below is built
    state.start(spec)  # opening and planning while the page is built
    app = PlacementApp(state)
    if app.loop is not None:  # warm, the first plan comes within the page (issue 10: under 3 s)
        app.loop.settle(lambda: bool(state.error) or (state.plan is not None and bool(state.source)),
                        timeout_s=float(os.environ.get("PLACEMENT_APP_FIRST_PLAN_S", "2.5")))
    return app
