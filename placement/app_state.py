"""The app's state: a Panel-free `param.Parameterized` object that drives one `Workspace`.

Inputs are params (the SLO, budget, load, network, prices, candidates); results are params (the
outcome of the last plan, the plan shown, the frontier, the offers and profiles, progress, the
last error). Every input change schedules a re-plan after a short debounce; all Workspace work runs
on one background worker thread, newest request wins, so a caller (the Panel page, a test) never
blocks. Long jobs (cold profiling, tuning, refreshing prices) report progress through params.

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

import pandas as pd
import param
from pydantic import ValidationError

from placement import api
from placement.app_tuning import TuningJobs
from placement.app_uploads import save_upload
from placement.spec import CloudCandidate
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


class AppState(TuningJobs, param.Parameterized):
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
    debounce_s = param.Number(default=0.15, bounds=(0, None))
    frontier_points = param.Integer(default=12, bounds=(2, 50))

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
        self._lock = threading.Lock()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self._quiet = False  # inputs being set from a spec: no re-plan per field
        self._baseline: dict = {}
        self._planned: api.Overrides | None = None  # what the last re-plan planned
        self._frontier_key = None
        self._upload_root = Path(tempfile.mkdtemp(prefix="placement-app-"))
        self._uploads = 0
        self._tune_thread: threading.Thread | None = None
        self._tune_cancel = threading.Event()
        self._closed = False
        self.param.watch(self._input_changed, list(self.INPUTS))
        self.param.watch(self._example_chosen, ["example"])
        self.param.watch(self._cloud_scope_changed, ["providers", "regions"])

    # -- the worker ---------------------------------------------------------------------------

    def _submit(self, fn, *args) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._set(busy=True)
        self._executor.submit(self._run, fn, *args)

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
        if self._timer is not None:
            self._timer.cancel()
        self.cancel_tuning()
        self._executor.shutdown(wait=False, cancel_futures=True)
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
        self._frontier_key = None
        self._set_inputs_from(ws)
        self._set(source=label, profiles=ws.profiles, offers=ws.offers(team_prices=True),
                  frontier=[], frontier_index=None)
        for w in ws.warnings:
            self._set(notice=w)
        self._replan_job(self._generation, api.Overrides())  # the spec as it stands

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

    def _set_inputs_from(self, ws: api.Workspace) -> None:
        spec = ws.spec
        offers = ws.offers_table
        edge = offers[offers["tier"] == "edge"]
        cloud = offers[offers["tier"] == "cloud"]
        providers = [c.provider for c in spec.hardware.cloud]
        regions = sorted({r for c in spec.hardware.cloud for r in c.regions})
        types = sorted(self._types_of(spec.hardware.cloud, cloud))
        objects = {"edge_devices": sorted(set(edge["instance_type"]) | set(spec.hardware.edge)),
                   "providers": sorted(set(cloud["provider"])), "regions": sorted(set(cloud["region"])),
                   "instance_types": self._type_objects(providers, regions, cloud, types)}
        values = dict(
            slo_ms=spec.slo.latency_ms, percentile=spec.slo.percentile,
            min_site_share=spec.slo.min_site_share, budget_usd=spec.monthly_budget_usd,
            sites=spec.load.sites, rate_per_site_rps=spec.load.rate_per_site_rps,
            uplink_mbps=spec.network.uplink_mbps, downlink_mbps=spec.network.downlink_mbps,
            rtt_ms=dict(spec.network.rtt_ms), pricing_model=spec.hardware.pricing_model,
            discount_percent={p: float(spec.hardware.discount_percent.get(p, 0.0))
                              for p in sorted(set(cloud["provider"]))},
            objective="cost", estimated_latency=spec.solver.estimated_latency,
            edge_devices=list(spec.hardware.edge), providers=providers, regions=regions,
            instance_types=types)
        self._baseline = {name: values[name] for name in self.INPUTS}

        def show() -> None:
            self._quiet = True
            try:
                for name, found in objects.items():
                    self.param[name].objects = found
                self.param.update(**values)
            finally:
                self._quiet = False

        self.publish(show)

    @staticmethod
    def _types_of(candidates, cloud: pd.DataFrame) -> set[str]:
        types: set[str] = set()
        for c in candidates:
            if c.instance_types is not None:
                types |= set(c.instance_types)
            else:
                rows = cloud[(cloud["provider"] == c.provider) & cloud["region"].isin(c.regions)]
                types |= set(rows["instance_type"])
        return types

    @staticmethod
    def _type_objects(providers, regions, cloud: pd.DataFrame, keep=()) -> list[str]:
        rows = cloud[cloud["provider"].isin(providers) & cloud["region"].isin(regions)]
        return sorted(set(rows["instance_type"]) | set(keep))

    def _cloud_scope_changed(self, *events) -> None:
        if self._quiet or self.workspace is None:
            return
        cloud = self.workspace.offers_table
        cloud = cloud[cloud["tier"] == "cloud"]
        objects = self._type_objects(self.providers, self.regions, cloud)
        self.param.instance_types.objects = objects
        kept = [t for t in self.instance_types if t in objects]
        if kept != list(self.instance_types):
            self.instance_types = kept

    def _value(self, name):
        value = getattr(self, name)
        return list(value) if isinstance(value, list) else (dict(value) if isinstance(value, dict) else value)

    # -- what-ifs -----------------------------------------------------------------------------

    def overrides(self) -> api.Overrides:
        """The inputs that differ from the spec, as the Workspace's `Overrides`."""
        changed = {name for name in self.INPUTS if self._value(name) != self._baseline.get(name)}
        kw: dict = {}
        simple = ("slo_ms", "percentile", "min_site_share", "budget_usd", "sites", "rate_per_site_rps",
                  "uplink_mbps", "downlink_mbps", "pricing_model", "estimated_latency")
        for name in simple:
            if name in changed:
                kw[name] = getattr(self, name)
        if "rtt_ms" in changed:
            kw["rtt_ms"] = dict(self.rtt_ms)
        if "discount_percent" in changed:
            kw["discount_percent"] = {p: float(v) for p, v in self.discount_percent.items()}
        if "edge_devices" in changed:
            kw["edge_devices"] = list(self.edge_devices)
        if changed & {"providers", "regions", "instance_types"}:
            kw["cloud"] = self._cloud_candidates()
        if self.objective != "cost":
            kw["objective"] = self.objective
        return api.Overrides(**kw)

    def _cloud_candidates(self) -> list[CloudCandidate]:
        ws = self.workspace
        cloud = ws.offers_table[ws.offers_table["tier"] == "cloud"]
        spec_by_provider = {c.provider: c for c in ws.spec.hardware.cloud}
        out = []
        for provider in self.providers:
            mine = cloud[cloud["provider"] == provider]
            regions = [r for r in self.regions if r in set(mine["region"])]
            types = [t for t in self.instance_types if t in set(mine[mine["region"].isin(regions)]["instance_type"])]
            if not regions or not types:
                continue
            was = spec_by_provider.get(provider)
            out.append(CloudCandidate(provider=provider, regions=regions, instance_types=types,
                                      gpu=was.gpu if was else None,
                                      max_hourly_usd=was.max_hourly_usd if was else None))
        return out

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
        if generation != self._generation or self.workspace is None:
            return  # a newer request is queued behind this one
        self._set(activity="planning")
        overrides = self.overrides() if overrides is None else overrides
        self._planned = overrides
        # the plan first (the headline and the table need nothing more), then the same solve
        # with its baselines and slack (or, when infeasible, the explanation)
        quick = self.workspace.plan(overrides, analyse=False)
        self._set(outcome=quick, plan=quick.plan, frontier_index=None, error="")
        if generation != self._generation:
            return
        outcome = self.workspace.plan(overrides, analyse=True)
        self._set(outcome=outcome, plan=outcome.plan, frontier_index=None, error="", replans=self.replans + 1)
        frontier_key = overrides.model_copy(update={"slo_ms": None, "objective": None})
        # computed even when superseded (the next plan reuses it), and again whenever none is shown
        if frontier_key != self._frontier_key or not self.frontier:
            self._set(activity="frontier")
            try:
                plans = self.workspace.frontier(overrides, max_points=self.frontier_points)
            except UserError as exc:
                plans = []
                self._set(notice=f"frontier: {exc}")
            self._frontier_key = frontier_key
            self._set(frontier=plans)

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

    # -- what the user takes away -------------------------------------------------------------

    def plan_json(self) -> str:
        return self.plan.model_dump_json(indent=2) if self.plan is not None else "{}"

    def summary_markdown(self) -> str:
        from placement.report import markdown_summary

        return markdown_summary(self.plan) if self.plan is not None else ""

    def profiles_csv_text(self) -> str:
        return self.profiles.to_csv(index=False) if self.profiles is not None else ""

    def report_html(self) -> str:
        """The procurement report of the plan shown (its sensitivity cases re-solved here)."""
        from placement.procurement import build_report, render_html

        if self.plan is None or self.workspace is None:
            return ""
        return render_html(build_report(self.workspace, overrides=self.overrides(), plan=self.plan))

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
        self._frontier_key = None
        self._set(offers=new.offers(team_prices=True),
                          notice=f"prices refreshed for {fetched} region(s)"
                          + (f"; not for {', '.join(failed)}" if failed else ""))
        self._replan_job(self._generation)

    def _reprofile_job(self) -> None:
        ws = self.workspace
        self._profile(ws)
        self._frontier_key = None
        self._set(profiles=ws.profiles)
        self._replan_job(self._generation)
