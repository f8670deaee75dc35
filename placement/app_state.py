"""The app's state: a Panel-free `param.Parameterized` object that drives one `Workspace`.

Inputs are params (the SLO, budget, load, network, prices, candidates); results are params (the
outcome of the last plan, the plan shown, the frontier, the offers and profiles, progress, the
last error). Every input change schedules a re-plan after a short debounce. Workspace work runs on
two background threads, newest request wins, so a caller (the Panel page, a test) never blocks: the
planner solves the plan (what the headline and the placement need, ~0.1 s) and publishes it; the
analyst then adds its baselines (or the explanation) and the frontier, which take seconds, so a
new change never waits behind them. Long jobs (cold profiling, tuning, refreshing prices) report
progress through params.

Nothing here imports Panel: `app.py` / `placement.app_layout` only lay these params out, and the
logic tests drive this class directly (`state.wait_idle()` waits for the worker).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import param
from pydantic import ValidationError

from placement import api
from placement.app_downloads import Downloads
from placement.app_inputs import SpecInputs
from placement.app_tuning import TuningJobs
from placement.app_uploads import save_upload
from profiles.errors import UserError

log = logging.getLogger(__name__)
PRICING_MODELS = ["on-demand", "spot", "reserved-1y", "reserved-3y"]


# Profiles of a spec file by content (path, size, mtime, tables): a second session on the same
# spec starts from them instead of re-reading the profile cache (the Workspace itself is per session).
_PROFILED: dict = {}
_PROFILED_LOCK = threading.Lock()


def _content_key(path: Path, *tables) -> tuple:
    def stamp(p):
        if p is None:
            return None
        st = Path(p).stat()
        return (str(Path(p).resolve()), st.st_size, st.st_mtime_ns)

    return (stamp(path),) + tuple(stamp(t) for t in tables)


def nice_up(x: float, step: float) -> float:
    return math.ceil(x / step + 1e-9) * step


class AppState(SpecInputs, Downloads, TuningJobs, param.Parameterized):
    """One user's session: the spec being planned, what they moved, and what came out."""

    # -- where the spec comes from ------------------------------------------------------------
    example = param.Selector(default=None, objects=[], allow_None=True, doc="a bundled example spec")
    source = param.String(default="", doc="the spec being planned (path, upload or example)")

    # -- what the user moves ------------------------------------------------------------------
    slo_ms = param.Number(default=300.0, bounds=(0.1, None), doc="latency SLO (ms)")
    percentile = param.Selector(default=95, objects=[50, 90, 95, 99])
    min_site_share = param.Number(default=1.0, bounds=(0.01, 1.0), step=0.01)
    budget_usd = param.Number(default=3000.0, bounds=(1.0, None), doc="monthly budget ($)")
    sites = param.Integer(default=40, bounds=(1, None))
    rate_per_site_rps = param.Number(default=2.0, bounds=(0.001, None))
    uplink_mbps = param.Number(default=20.0, bounds=(0.01, None))
    downlink_mbps = param.Number(default=100.0, bounds=(0.01, None))
    rtt_ms = param.Dict(default={}, doc="round-trip ms from a site to each cloud region")
    pricing_model = param.Selector(default="on-demand", objects=PRICING_MODELS)
    discount_percent = param.Dict(default={}, doc="negotiated discount per provider (%)")
    objective = param.Selector(default="cost", objects=["cost", "latency"])
    estimated_latency = param.Selector(default="nominal", objects=["nominal", "upper-band"])
    edge_devices = param.ListSelector(default=[], objects=[])
    providers = param.ListSelector(default=[], objects=[])
    regions = param.ListSelector(default=[], objects=[])
    instance_types = param.ListSelector(default=[], objects=[])

    # -- what comes out -----------------------------------------------------------------------
    outcome = param.Parameter(default=None, doc="the last solve (api.PlanOutcome)")
    plan = param.Parameter(default=None, doc="the plan every view shows: the solve's or a frontier point's")
    frontier = param.List(default=[], doc="Pareto plans, cheapest first")
    frontier_index = param.Integer(default=None, allow_None=True, doc="the frontier point shown")
    frontier_note = param.String(default="", doc="why no frontier is shown: being computed, or none within the budget")
    offers = param.DataFrame(default=None, allow_None=True)
    profiles = param.DataFrame(default=None, allow_None=True)
    busy = param.Boolean(default=False)
    activity = param.String(default="", doc="what the worker is doing")
    progress = param.Dict(default={}, doc="profiling: piece -> {done, total, step, runtime}")
    tuning = param.Dict(default={}, doc="the tuning job: phase, trials, time left, ...")
    error = param.String(default="", doc="the last user error, one line")
    errors = param.Integer(default=0, doc="counts errors, so the same message twice notifies twice")
    notice = param.String(default="", doc="the last informational message")
    replans = param.Integer(default=0, doc="finished re-plans")

    # -- limits -------------------------------------------------------------------------------
    max_file_mb = param.Number(default=200.0, bounds=(0, None), doc="upload cap per file")
    max_total_mb = param.Number(default=500.0, bounds=(0, None), doc="upload cap in total")
    debounce_s = param.Number(default=0.1, bounds=(0, None))
    frontier_points = param.Integer(default=12, bounds=(2, 50))
    frontier_quiet_s = param.Number(default=1.0, bounds=(0, None),
                                    doc="quiet inputs before a moved frontier is recomputed (it cannot be stopped)")

    INPUTS = ("slo_ms", "percentile", "min_site_share", "budget_usd", "sites", "rate_per_site_rps",
              "uplink_mbps", "downlink_mbps", "rtt_ms", "pricing_model", "discount_percent", "objective",
              "estimated_latency", "edge_devices", "providers", "regions", "instance_types")

    def __init__(self, *, offers_csv: str | Path | None = None, profiles_csv: str | Path | None = None,
                 examples: dict[str, Path] | None = None, **params):
        super().__init__(**params)
        self.offers_csv = offers_csv
        self.profiles_csv = profiles_csv
        self.examples = dict(examples if examples is not None else api.example_spec_paths())
        self.param.example.objects = list(self.examples)
        self.workspace: api.Workspace | None = None
        # How results from the worker thread reach the params: called directly by default (tests,
        # scripts); a Panel page sets it to schedule them on its own event loop, so that widgets
        # and plots are only ever touched there.
        self.publish = lambda fn: fn()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="placement-app")
        self._analyst = ThreadPoolExecutor(max_workers=1, thread_name_prefix="placement-app-analysis")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every new generation
        self._analysis_open = threading.Event()  # see hold_analysis
        self._analysis_open.set()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self._quiet = False  # inputs being set from a spec: no re-plan per field
        self._baseline: dict = {}
        self._planned: api.Overrides | None = None  # what the last re-plan planned
        self._frontier_for = None  # (workspace, overrides but the SLO) of the frontier shown
        self._upload_root = Path(tempfile.mkdtemp(prefix="placement-app-"))
        self._uploads = 0
        self._tune_thread: threading.Thread | None = None
        self._tune_cancel = threading.Event()
        self._closed = False
        self.param.watch(self._input_changed, list(self.INPUTS))
        self.param.watch(self._example_chosen, ["example"])
        self.param.watch(self._cloud_scope_changed, ["providers", "regions"])

    # -- the worker ---------------------------------------------------------------------------

    def _submit(self, fn, *args, pool: ThreadPoolExecutor | None = None, counted: bool = False) -> None:
        """Run `fn` on the planner's thread (or `pool`); `counted`: already in `_pending`."""
        if not counted:
            with self._lock:
                self._pending += 1
                self._idle.clear()
            self._set(busy=True)
        try:
            (pool or self._executor).submit(self._run, fn, *args)
        except RuntimeError:  # the session closed meanwhile
            self._done()

    def _run(self, fn, *args) -> None:
        try:
            fn(*args)
        except UserError as exc:
            self._fail(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            self._fail(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}")
        except Exception as exc:  # a bug must not kill the session: say what broke, keep going
            log.exception("app worker")
            self._fail(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            done = self._pending == 0 and self._timer is None
        if done:
            self._set(busy=False, activity="")
            self._idle.set()

    def _fail(self, message: str) -> None:
        # an uploaded file is named as the user named it, not by this session's temporary folder
        message = re.sub(re.escape(str(self._upload_root)) + r"/upload-\d+/", "", message)
        self.publish(lambda: self.param.update(error=message, errors=self.errors + 1))

    def _set(self, **values) -> None:
        """Results from the worker reach the params through `publish`."""
        self.publish(lambda: self.param.update(**values))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no work is scheduled or running (tests, benchmarks, scripts)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """End the session: stop tuning, drop queued work, remove the uploaded files."""
        self._closed = True
        self._analysis_open.set()
        if self._timer is not None:
            self._timer.cancel()
        self.cancel_tuning()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._analyst.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._upload_root, ignore_errors=True)

    # -- loading a spec -----------------------------------------------------------------------

    def open_spec(self, spec_path: str | Path, *, profiles_csv=None, offers_csv=None, label: str | None = None):
        """Open a spec file (in the background): check it, profile it if needed, plan it."""
        self._submit(self._open_job, Path(spec_path), profiles_csv, offers_csv, label or str(spec_path))

    def open_workspace(self, workspace: api.Workspace, label: str = "workspace") -> None:
        """Plan a Workspace made elsewhere (tables handed in, e.g. in tests)."""
        self._submit(self._adopt_job, workspace, label)

    def start(self, spec_path: str | Path) -> None:
        """Open the session's first spec; the app's profiles CSV belongs to it (an example picked
        later is profiled, or comes from the profile cache)."""
        self._first = Path(spec_path).resolve()
        name = next((k for k, v in self.examples.items() if Path(v).resolve() == self._first), None)
        with param.discard_events(self):
            self.example = name
        self.open_spec(spec_path, profiles_csv=self.profiles_csv, offers_csv=self.offers_csv,
                       label=f"example: {name}" if name else str(spec_path))

    def _example_chosen(self, event) -> None:
        if event.new is None or event.new not in self.examples:
            return
        path = self.examples[event.new]
        first = Path(path).resolve() == getattr(self, "_first", None)
        self.open_spec(path, profiles_csv=self.profiles_csv if first else None,
                       offers_csv=self.offers_csv, label=f"example: {event.new}")

    def _open_job(self, path: Path, profiles_csv, offers_csv, label: str) -> None:
        self._set(activity=f"reading {label}", error="")
        ws = api.Workspace.open(path, offers_csv=offers_csv, profiles_csv=profiles_csv)
        key = _content_key(path, offers_csv, profiles_csv)
        with _PROFILED_LOCK:
            cached = _PROFILED.get(key)
        if ws.profiles_table is None and cached is not None:
            ws.profiles_table, ws.profile_problems = cached  # profiled by an earlier session
        self._adopt_job(ws, label)
        with _PROFILED_LOCK:
            _PROFILED[key] = (ws.profiles_table, list(ws.profile_problems))

    def _adopt_job(self, ws: api.Workspace, label: str) -> None:
        if ws.profiles_table is None:
            self._profile(ws)
        self.workspace = ws
        self._set(frontier=[], frontier_index=None, frontier_note="computing the frontier…")
        # the plan first (the spec as it stands): the page shows it before it fills the inputs
        self._replan_job(self._generation, api.Overrides())
        self._set_inputs_from(ws)
        self._set(source=label, profiles=ws.profiles, offers=ws.offers(team_prices=True))
        for w in ws.warnings:
            self._set(notice=w)

    def _profile(self, ws: api.Workspace) -> None:
        self._set(activity="profiling", progress={})
        progress: dict = {}
        last = [0.0]

        def on_event(event) -> None:
            progress[event.piece] = {"done": event.done, "total": event.total, "step": event.step,
                                     "runtime": event.runtime}
            now = time.monotonic()
            if now - last[0] > 0.2 or event.done >= event.total:
                last[0] = now
                self._set(progress=dict(progress))

        report = ws.profile(on_event)
        self._set(progress=dict(progress))
        for problem in getattr(report, "problems", ()) or ():
            self._set(notice=str(problem))

    def _input_changed(self, *events) -> None:
        if self._quiet or self.workspace is None or self._closed:
            return
        try:
            if self.overrides() == self._planned:
                return  # a widget echoing the value it was given: nothing to re-plan
        except (ValidationError, UserError):
            pass  # the re-plan reports it
        self.request_replan()

    def request_replan(self) -> None:
        """Re-plan after `debounce_s` of quiet; a newer request supersedes a queued one."""
        with self._lock:
            self._generation += 1
            self._changed.notify_all()
            generation = self._generation
            if self._timer is not None:
                self._timer.cancel()
            self._idle.clear()
            timer = threading.Timer(self.debounce_s, self._fire, args=(generation,))
            timer.daemon = True
            self._timer = timer
        self._set(busy=True)
        timer.start()

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._closed:
                return
            self._timer = None
            self._pending += 1  # counted before the timer is cleared: wait_idle never sees a gap
        self._executor.submit(self._run, self._replan_job, generation)

    def _replan_job(self, generation: int, overrides: api.Overrides | None = None) -> None:
        """The plan alone (what the headline and the table need), published; its analysis and
        the frontier follow on the analyst's thread once the plan is on its way to the page."""
        ws = self.workspace
        if generation != self._generation or ws is None:
            return  # a newer request is queued behind this one
        self._set(activity="planning")
        overrides = self.overrides() if overrides is None else overrides
        self._planned = overrides
        quick = ws.plan(overrides, analyse=False)
        with self._lock:
            self._pending += 1  # the analysis, counted now: wait_idle never sees a gap

        def show() -> None:
            self.param.update(outcome=quick, plan=quick.plan, frontier_index=None, error="")
            self._submit(self._analysis_job, generation, ws, overrides, quick, pool=self._analyst, counted=True)

        self.publish(show)

    def hold_analysis(self, held: bool) -> None:
        """Hold analyses and frontiers back (a page being made and sent: they would compete with
        it for the interpreter) or let them go; a hold lapses by itself after 30 s."""
        (self._analysis_open.clear if held else self._analysis_open.set)()

    def _analysis_job(self, generation: int, ws: api.Workspace, overrides: api.Overrides,
                      quick: api.PlanOutcome) -> None:
        self._analysis_open.wait(30)
        if generation != self._generation or self._closed:
            return  # superseded: the newer plan brings its own analysis
        self._set(activity="analysing")
        outcome = ws.analyse(quick)

        def show() -> None:
            if self.outcome is not quick:
                return  # a newer plan is shown
            shown = {"plan": outcome.plan} if self.plan is quick.plan else {}  # not a clicked frontier point
            self.param.update(outcome=outcome, replans=self.replans + 1, **shown)

        self.publish(show)
        # The frontier does not depend on the objective: computed when any other input changes
        # (the SLO too: its points' "meets the SLO" and violations are against it) and for a new
        # Workspace; then only when no newer change is waiting (it cannot be stopped once begun).
        key = (ws, overrides.model_copy(update={"objective": None}))
        if key == self._frontier_for or generation != self._generation:
            return
        if self._frontier_for is not None and self._frontier_for[0] is ws and self.frontier_quiet_s:
            # a moved frontier (not a new Workspace's): wait for the inputs to rest, so a burst of
            # changes (typing, a spinner held) does not keep two cores busy with frontiers
            with self._lock:
                if self._changed.wait_for(lambda: generation != self._generation, self.frontier_quiet_s):
                    return
        self._set(activity="frontier", frontier_note="computing the frontier…")
        try:
            plans = ws.frontier(overrides, max_points=self.frontier_points)
            note = "" if plans else f"no plan within the budget (${quick.plan.budget_usd:,.0f}/month) at any latency"
        except UserError as exc:
            plans, note = [], str(exc)
        self._frontier_for = key  # (one analyst thread: frontiers are published in order)
        self._set(frontier=plans, frontier_note=note)

    def select_frontier(self, index: int | None) -> None:
        """Load a frontier point's plan into every view (None: back to the solved plan)."""
        if index is None or not (0 <= index < len(self.frontier)):
            self.param.update(frontier_index=None, plan=self.outcome.plan if self.outcome else None)
            return
        self.param.update(frontier_index=index, plan=self.frontier[index])

    def suggestions(self) -> list[tuple[str, str, float]]:
        """When infeasible: (label, input, value) for each nearest feasible value the
        explanation names; `apply_suggestion` sets it."""
        plan = self.outcome.plan if self.outcome else None
        if plan is None or plan.explanation is None:
            return []
        e = plan.explanation
        out = []
        if e.fastest_p95_ms is not None and e.fastest_p95_ms > self.slo_ms:
            value = nice_up(e.fastest_p95_ms * 1.001, 0.1)
            out.append((f"SLO {value:g} ms (the fastest possible p{self.percentile})", "slo_ms", value))
        if e.cheapest_meeting_slo_usd is not None and e.cheapest_meeting_slo_usd > self.budget_usd:
            value = nice_up(e.cheapest_meeting_slo_usd, 1.0)
            out.append((f"budget ${value:,.0f}/month (the cheapest plan meeting the SLO)", "budget_usd", value))
        if e.largest_site_share is not None and 0 < e.largest_site_share < self.min_site_share:
            value = math.floor(e.largest_site_share * 100) / 100
            out.append((f"SLO on {value:.0%} of sites (the most any plan reaches)", "min_site_share", value))
        return out

    def apply_suggestion(self, name: str, value: float) -> None:
        self.param.update(**{name: value})

    # -- uploads ------------------------------------------------------------------------------

    def upload(self, files: dict[str, bytes]) -> None:
        """A spec (YAML) with its ONNX files, or one zip of them: checked, saved in this
        session's temporary folder, opened. Bad input becomes `error`, naming the file."""
        self.error = ""
        try:
            self._uploads += 1
            path, profiles_csv = save_upload(files, self._upload_root / f"upload-{self._uploads}",
                                             max_file_mb=self.max_file_mb, max_total_mb=self.max_total_mb)
        except UserError as exc:
            self._fail(str(exc))
            return
        self.open_spec(path, profiles_csv=profiles_csv, offers_csv=self.offers_csv,
                       label=f"upload: {path.name}")

    # -- prices -------------------------------------------------------------------------------

    def refresh_prices(self) -> None:
        """Fetch current prices for the spec's providers and regions; offline, keep the snapshot
        and say which date stays in use."""
        self._submit(self._refresh_job)

    def _refresh_job(self) -> None:
        from pricing.cache import refresh

        ws = self.workspace
        if ws is None:
            return
        if self.offers_csv is not None:
            self._set(notice=f"prices come from {self.offers_csv}; nothing to refresh")
            return
        self._set(activity="refreshing prices")
        failed, fetched = [], 0
        for c in ws.spec.hardware.cloud:
            for region in c.regions:
                result = refresh(c.provider, region, instance_types=c.instance_types)
                if result.ok:
                    fetched += 1
                else:
                    failed.append(f"{c.provider} {region}: {result.error or result.status}")
        date = self.plan.provenance.price_date if self.plan is not None else "the snapshot's date"
        if failed and not fetched:
            self._set(notice=f"prices not refreshed ({failed[0]}); prices of {date} stay in use")
            return
        new = api.Workspace(ws.spec, ws.base_dir, offers_table=api.load_offers(), profiles_table=ws.profiles_table,
                            io_bytes=ws.io_bytes, origin=ws.origin, row_providers=ws.row_providers)
        self.workspace = new
        self._set(offers=new.offers(team_prices=True),
                          notice=f"prices refreshed for {fetched} region(s)"
                          + (f"; not for {', '.join(failed)}" if failed else ""))
        self._replan_job(self._generation)

    def _reprofile_job(self) -> None:
        ws = self.workspace
        self._profile(ws)
        self._frontier_for = None  # new profiles: the same Workspace, a new frontier
        self._set(profiles=ws.profiles)
        self._replan_job(self._generation)
