"""The app's state without a server: driven like the page drives it, over table-backed
Workspaces (no TVM), every answer checked against the Workspace asked directly."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from test_workspace import comparable, two_model_spec, two_model_tables

from placement import api
from placement.app_state import AppState
from placement.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
DEMO_PROFILES = ROOT / "tests" / "data" / "app" / "demo_profiles.csv"


def table_workspace() -> api.Workspace:
    offers, profiles, io_bytes = two_model_tables()
    return api.Workspace(parse_spec(two_model_spec()), offers_table=offers, profiles_table=profiles,
                         io_bytes=io_bytes)


@pytest.fixture
def state():
    s = AppState(examples={}, debounce_s=0.05, frontier_quiet_s=0.2)
    s.open_workspace(table_workspace(), label="two models")
    assert s.wait_idle(60)
    yield s
    s.close()


def test_opening_plans_and_fills_every_result(state):
    assert state.error == ""
    assert state.plan is not None and state.plan.status == "optimal"
    assert state.frontier and all(p.status == "optimal" for p in state.frontier)
    assert state.offers is not None and state.profiles is not None
    assert state.slo_ms == 300 and state.sites == 40 and state.regions == ["r0", "r1"]
    assert state.overrides() == api.Overrides()  # nothing moved yet
    assert comparable(state.plan) == comparable(table_workspace().plan().plan)


def test_slo_change_replans_once_after_the_debounce_and_matches_a_fresh_plan(state):
    before = state.replans
    for slo in (200, 150, 120, 60):  # quick moves: the newest wins, one re-plan
        state.slo_ms = slo
    assert state.wait_idle(60)
    assert state.replans == before + 1
    assert state.plan.latency.slo_ms == 60
    fresh = table_workspace().plan(api.Overrides(slo_ms=60)).plan
    assert comparable(state.plan) == comparable(fresh)


def test_infeasible_explains_and_a_suggestion_makes_it_feasible(state):
    state.slo_ms = 20
    state.wait_idle(60)
    assert state.plan.status == "infeasible" and state.plan.explanation is not None
    suggestions = state.suggestions()
    assert suggestions and suggestions[0][1] == "slo_ms"
    _label, name, value = suggestions[0]
    state.apply_suggestion(name, value)
    state.wait_idle(60)
    assert state.plan.feasible and state.plan.latency.p95_ms <= value


def test_clicking_a_frontier_point_loads_its_plan_and_a_replan_returns_to_the_solve(state):
    assert len(state.frontier) >= 2
    fastest = len(state.frontier) - 1
    state.select_frontier(fastest)
    assert state.plan is state.frontier[fastest] and state.frontier_index == fastest
    state.select_frontier(None)
    assert state.plan is state.outcome.plan
    state.select_frontier(0)
    state.budget_usd = 2500
    state.wait_idle(60)
    assert state.frontier_index is None and state.plan is state.outcome.plan


def test_candidates_become_cloud_overrides(state):
    state.regions = ["r1"]
    state.wait_idle(60)
    assert state.instance_types == ["c1"]  # only what r1 offers stays selectable
    overrides = state.overrides()
    assert [(c.provider, c.regions, c.instance_types) for c in overrides.cloud] == [("aws", ["r1"], ["c1"])]
    assert {p.region for p in state.plan.placements if p.tier == "cloud"} <= {"r1"}
    state.edge_devices = ["pi"]
    state.wait_idle(60)
    assert state.overrides().edge_devices == ["pi"]
    assert {p.instance_type for p in state.plan.placements if p.tier == "edge"} <= {"pi"}


def test_bad_value_names_the_field_and_the_session_goes_on(state):
    state.rtt_ms = {"r0": -5.0, "r1": 90.0}
    state.wait_idle(60)
    assert "rtt_ms" in state.error and state.errors == 1
    state.rtt_ms = {"r0": 150.0, "r1": 90.0}
    state.wait_idle(60)
    assert state.error == "" and state.plan.feasible


def test_downloads_plan_json_valid_against_the_schema_and_summary(state):
    schema = json.loads((ROOT / "docs" / "plan.schema.json").read_text())
    jsonschema.validate(json.loads(state.plan_json()), schema)
    summary = state.summary_markdown()
    assert f"${state.plan.costs.monthly_usd:,.2f}/month" in summary
    assert state.profiles_csv_text().startswith("piece,")
    report = state.report_html()  # the procurement report of the plan shown
    assert report.startswith("<!DOCTYPE html>") or report.lstrip().lower().startswith("<!doctype html>")
    assert f"{state.plan.costs.monthly_usd:,.2f}" in report


def test_upload_broken_spec_names_the_file_and_field():
    s = AppState(examples={})
    try:
        s.upload({"broken.yaml": b"name: x\nslo: {latency_ms: -5, percentile: 95}\n"})
        s.wait_idle(30)
        assert s.error.startswith("broken.yaml: ")
        assert "placement-app-" not in s.error  # never this session's temporary folder
        s.upload({"bad.yaml": b"name: [unclosed\n"})
        assert "bad.yaml" in s.error and "YAML" in s.error
    finally:
        s.close()


def test_upload_naming_a_file_outside_itself_is_refused(tmp_path):
    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"not read")
    spec = (ROOT / "placement" / "data" / "demo.yaml").read_text().replace(
        "onnx: zoo:resnet18", "onnx: ../secret.onnx\n    inputs: {x: [1, 3, 224, 224]}")
    s = AppState(examples={})
    try:
        s.upload({"app.yaml": spec.encode()})
        assert "models[1].onnx" in s.error and "outside the upload" in s.error and "../secret.onnx" in s.error
        s.upload({"abs.yaml": spec.replace("../secret.onnx", str(secret)).encode()})
        assert "outside the upload" in s.error
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("app.yaml", "name: x\n")
            z.writestr("../escape.onnx", b"x")
        s.upload({"bundle.zip": archive.getvalue()})
        assert "'../escape.onnx'" in s.error and "outside the upload" in s.error
        assert s.workspace is None
    finally:
        s.close()


def test_upload_caps_per_file_and_in_total():
    s = AppState(examples={}, max_file_mb=0.001, max_total_mb=0.0015)
    try:
        s.upload({"big.onnx": b"x" * 2000, "app.yaml": b"name: x\n"})
        assert "big.onnx" in s.error and "limit per file" in s.error
        s.upload({"a.onnx": b"x" * 1000, "b.onnx": b"x" * 1000})
        assert "in all" in s.error
    finally:
        s.close()


def test_a_good_upload_plans_and_closing_removes_the_session_folder():
    s = AppState(examples={})
    try:
        s.upload({"demo.yaml": (ROOT / "placement" / "data" / "demo.yaml").read_bytes(),
                  "profiles.csv": DEMO_PROFILES.read_bytes()})
        assert s.wait_idle(120)
        assert s.error == "" and s.plan is not None and s.plan.feasible
        assert s.source == "upload: demo.yaml"
        root = s._upload_root
        assert any(root.rglob("demo.yaml"))
    finally:
        s.close()
    assert not root.exists()


def test_refresh_offline_keeps_the_snapshot_and_says_its_date(state, monkeypatch):
    import pricing.cache

    def offline(provider, region, **kw):
        return pricing.cache.RefreshResult(provider=provider, region=region, status="failed",
                                           path=Path("/nonexistent"), error="network unreachable")

    monkeypatch.setattr(pricing.cache, "refresh", offline)
    before = state.workspace
    state.refresh_prices()
    state.wait_idle(30)
    assert "network unreachable" in state.notice and "2026-01-01" in state.notice
    assert state.workspace is before


# -- the plan first, its analysis and the frontier after (two threads) -----------------------------

def _gate(ws, name, monkeypatch):
    """Hold the Workspace's `name` at its first call until released: (started, release)."""
    real, started, release = getattr(ws, name), threading.Event(), threading.Event()

    def held(*args, **kw):
        if not started.is_set():
            started.set()
            assert release.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(ws, name, held)
    return started, release


def _when(state, predicate) -> threading.Event:
    """An event set as soon as the state's plan satisfies `predicate`."""
    seen = threading.Event()
    state.param.watch(lambda e: seen.set() if e.new is not None and predicate(e.new) else None, ["plan"])
    return seen


def test_the_plan_is_shown_before_its_analysis_and_a_change_never_waits_behind_one(state, monkeypatch):
    started, release = _gate(state.workspace, "analyse", monkeypatch)
    shown = []
    state.param.watch(lambda e: shown.append(e.new), ["plan"])
    state.slo_ms = 250
    assert started.wait(30)  # the analysis of 250 is running (held) ...
    assert state.plan.latency.slo_ms == 250 and not state.plan.baselines  # ... its plan is shown
    at_240 = _when(state, lambda p: p.latency.slo_ms == 240)
    state.slo_ms = 240
    assert at_240.wait(30)  # planned and shown while the analysis of 250 is still held
    release.set()
    assert state.wait_idle(60)
    assert state.plan.latency.slo_ms == 240 and state.plan.baselines
    assert state.outcome.plan is state.plan
    # the analysis of 250, superseded, was never shown
    assert all(p.latency.slo_ms == 240 for p in shown if p.baselines)
    fresh = table_workspace().plan(api.Overrides(slo_ms=240))
    assert comparable(state.plan) == comparable(fresh.plan)
    assert [b.model_dump() for b in state.plan.baselines] == [b.model_dump() for b in fresh.plan.baselines]


def test_changes_during_a_frontier_leave_the_frontier_of_the_last_inputs(state, monkeypatch):
    """The once-seen empty frontier: fast changes, one arriving while a frontier is computed."""
    started, release = _gate(state.workspace, "frontier", monkeypatch)
    state.budget_usd = 2500  # the frontier depends on the budget: a new one is computed (held)
    assert started.wait(30)
    state.budget_usd = 2600
    state.sites = 30
    state.slo_ms = 280
    release.set()
    assert state.wait_idle(60)
    assert state.frontier and state.frontier_note == ""
    expected = table_workspace().frontier(api.Overrides(budget_usd=2600, sites=30, slo_ms=280),
                                          max_points=state.frontier_points)
    assert [comparable(p) for p in state.frontier] == [comparable(p) for p in expected]
    assert state.plan.latency.slo_ms == 280 and state.plan.budget_usd == 2600


def test_a_budget_below_every_plan_empties_the_frontier_and_says_why(state):
    state.budget_usd = 1
    assert state.wait_idle(60)
    assert state.frontier == [] and "no plan within the budget ($1/month)" in state.frontier_note
    state.budget_usd = 3000
    assert state.wait_idle(60)
    assert state.frontier and state.frontier_note == ""


# -- the deployer bundle ---------------------------------------------------------------------------

def _ort_workspace(root: Path) -> api.Workspace:
    """test_export's two tiny models, profiled for ONNX Runtime only (nothing compiles)."""
    from test_export import spec_data, tables
    from test_tuning import two_kernel_model

    from profiles.hardware import local_hardware_name

    first = two_kernel_model(root / "first.onnx", n=16, m=8)
    second = two_kernel_model(root / "second.onnx", n=8, m=4)
    offers, profiles = tables(local_hardware_name())
    profiles = profiles[profiles["runtime"] == "onnxruntime"].reset_index(drop=True)
    return api.Workspace(parse_spec(spec_data(first, second), origin="test"), offers_table=offers,
                         profiles_table=profiles)


def test_the_bundle_download_is_the_export_of_the_plan_shown_as_a_zip(tmp_path):
    from placement.export import check_bundle

    s = AppState(examples={})
    try:
        s.open_workspace(_ort_workspace(tmp_path), label="tiny")
        assert s.wait_idle(60) and s.plan is not None and s.plan.feasible, s.error
        data = s.bundle_zip()
        assert s.bundle_zip() is data  # the same plan: built once
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            assert all(n.startswith("bundle/") for n in names)
            manifest = json.loads(z.read("bundle/manifest.json"))
            z.extractall(tmp_path / "unzipped")
        jsonschema.validate(manifest, json.loads((ROOT / "docs" / "manifest.schema.json").read_text()))
        assert {f"bundle/{f['path']}" for f in manifest["files"]} <= set(names)
        plan = json.loads((tmp_path / "unzipped" / "bundle" / "plan.json").read_text())
        assert plan["costs"]["monthly_usd"] == s.plan.costs.monthly_usd
        assert check_bundle(tmp_path / "unzipped" / "bundle") == []  # every file's sha256 as listed
        # another plan shown: another bundle; an infeasible one: an error naming why, no zip
        s.select_frontier(len(s.frontier) - 1)
        assert s.bundle_zip() != data
        s.slo_ms = 0.5
        assert s.wait_idle(60) and not s.plan.feasible
        assert s.bundle_download() is None and "nothing to export" in s.error
    finally:
        s.close()


# -- tuning: start, progress, cancel ----------------------------------------------------------------

def test_tuning_reports_progress_and_a_cancel_ends_it_leaving_the_state_usable(tmp_path, monkeypatch):
    """A real MetaSchedule job on a two-kernel model (its child starts in seconds), cancelled once
    it has planned its trials; then one cancelled before its child had even started."""
    from factories import profile_row, write_single_model_spec
    from test_tuning import two_kernel_model

    from profiles import table as pt
    from profiles.hardware import local_hardware_name

    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(tmp_path / "cache"))
    two_kernel_model(tmp_path / "two.onnx")
    write_single_model_spec(tmp_path / "app.yaml", app="tuned", model="two", onnx_path=tmp_path / "two.onnx")
    local = local_hardware_name()
    rows = [profile_row("two", hw, 0.05, 0.08) for hw in (local, "arm-cortex-a76-4c", "x86-zen4-2c")]
    rows[0][pt.SOURCE] = "measured-local"
    pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS).drop_duplicates(["hardware"]).to_csv(
        tmp_path / "profiles.csv", index=False)
    s = AppState(examples={})
    try:
        s.open_spec(tmp_path / "app.yaml", profiles_csv=tmp_path / "profiles.csv")
        assert s.wait_idle(60) and s.plan is not None, s.error
        assert s.tunable() == (["two"], [local])
        phases, planned = [], threading.Event()

        def seen(event):
            phases.append(event.new.get("phase"))
            if event.new.get("trials_planned"):
                planned.set()

        s.param.watch(seen, ["tuning"])
        s.start_tuning("two", local, 120)
        assert planned.wait(120), phases  # the child started and planned its trials
        s.start_tuning("two", local, 120)  # one job at a time
        assert "already running" in s.error
        s.cancel_tuning()
        assert s.wait_tuning(60)
        assert s.tuning["phase"] == "cancelled" and s.tuning["trials_planned"] > 0
        assert phases[0] == "starting" and "plan" in phases
        s.start_tuning("two", local, 120)
        s.cancel_tuning()  # before its child has started: it is stopped as soon as it reports
        assert s.wait_tuning(90) and s.tuning["phase"] == "cancelled"
        s.slo_ms = 250  # the session goes on
        assert s.wait_idle(60) and s.plan.latency.slo_ms == 250
    finally:
        s.close()


def test_a_browser_gone_mid_update_is_no_traceback_but_other_loop_errors_still_are(caplog):
    import asyncio
    import logging

    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    from placement.app_session import quiet_closed_connections

    loop = asyncio.new_event_loop()
    try:
        quiet_closed_connections(loop)
        with caplog.at_level(logging.DEBUG):
            for gone in (WebSocketClosedError(), StreamClosedError()):
                loop.call_exception_handler({"message": "Task exception was never retrieved", "exception": gone})
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert any("browser closed" in r.getMessage() for r in caplog.records)
            loop.call_exception_handler({"message": "Task exception was never retrieved",
                                         "exception": ValueError("a real bug")})
        [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert error.exc_info and isinstance(error.exc_info[1], ValueError)  # with its traceback
    finally:
        loop.close()
