"""The app's state without a server: driven like the page drives it, over table-backed
Workspaces (no TVM), every answer checked against the Workspace asked directly."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jsonschema
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
    s = AppState(examples={}, debounce_s=0.05)
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
