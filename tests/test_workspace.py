"""The Workspace with no CLI: made once, re-planned with overrides; every re-plan equals a plan
made from scratch of the edited spec, and reuses what the override does not touch."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from factories import offer_row, profile_row, write_single_model_spec

from placement import api
from placement.spec import CloudCandidate, SpecError, parse_spec
from pricing import table as ot
from profiles import table as pt


def two_model_spec() -> dict:
    return {
        "name": "two-models",
        "models": [{"name": "screener", "onnx": "zoo:mobilenetv2"},
                   {"name": "classifier", "onnx": "zoo:resnet18"}],
        "dataflow": [{"from": "source", "to": "screener", "bytes": 45_000},
                     {"from": "screener", "to": "classifier", "bytes": 15_000},
                     {"from": "classifier", "to": "sink"}],
        "load": {"sites": 40, "rate_per_site_rps": 2.0},
        "slo": {"latency_ms": 300, "percentile": 95},
        "monthly_budget_usd": 3000,
        "hardware": {"edge": ["pi", "nano"],
                     "cloud": [{"provider": "aws", "regions": ["r0", "r1"]}]},
        "network": {"uplink_mbps": 20.0, "downlink_mbps": 100.0, "rtt_ms": {"r0": 30.0, "r1": 90.0}},
        "solver": {"max_extra_replicas": 2, "time_limit_s": 10},
    }


def two_model_tables():
    offers = pd.DataFrame([
        offer_row("edge:pi", "edge", "pi", "hw-pi", unit=80.0, power=6.0, memory_gib=8.0),
        offer_row("edge:nano", "edge", "nano", "hw-nano", unit=250.0, power=15.0, memory_gib=8.0),
        offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.09, spot=0.03, reserved_1y=0.06),
        offer_row("aws:r0:g1", "cloud", "g1", "hw-g1", hourly=0.53, spot=0.2, reserved_1y=0.33),
        offer_row("aws:r1:c1", "cloud", "c1", "hw-c1", region="r1", hourly=0.08, spot=0.025,
                  reserved_1y=0.05),
    ], columns=ot.OFFER_COLUMNS)
    rows = []
    for piece, scale in (("screener", 1.0), ("classifier", 2.5)):
        rows += [profile_row(piece, "hw-pi", 40 * scale, 48 * scale),
                 profile_row(piece, "hw-nano", 8 * scale, 9 * scale),
                 profile_row(piece, "hw-c1", 12 * scale, 14 * scale),
                 profile_row(piece, "hw-c1", 9 * scale, 20 * scale, runtime="tvm"),
                 profile_row(piece, "hw-g1", 2 * scale, 2.5 * scale)]
    profiles = pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS)
    io_bytes = {"screener": (602_112, 4_000), "classifier": (602_112, 4_000)}
    return offers, profiles, io_bytes


# (overrides, the same edit made by hand to the spec's data)
def _edit(**paths):
    def apply(data):
        for path, value in paths.items():
            node = data
            keys = path.split("__")
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = value
        return data
    return apply


CASES = [
    (api.Overrides(slo_ms=120), _edit(slo__latency_ms=120)),
    (api.Overrides(slo_ms=60), _edit(slo__latency_ms=60)),
    (api.Overrides(slo_ms=20), _edit(slo__latency_ms=20)),
    (api.Overrides(percentile=99), _edit(slo__percentile=99)),
    (api.Overrides(budget_usd=150), _edit(monthly_budget_usd=150)),
    (api.Overrides(budget_usd=40), _edit(monthly_budget_usd=40)),
    (api.Overrides(sites=400), _edit(load__sites=400)),
    (api.Overrides(rate_per_site_rps=12.5), _edit(load__rate_per_site_rps=12.5)),
    (api.Overrides(sites=5, rate_per_site_rps=0.5), _edit(load__sites=5, load__rate_per_site_rps=0.5)),
    (api.Overrides(uplink_mbps=2.0), _edit(network__uplink_mbps=2.0)),
    (api.Overrides(downlink_mbps=5.0, uplink_mbps=200.0),
     _edit(network__downlink_mbps=5.0, network__uplink_mbps=200.0)),
    (api.Overrides(rtt_ms={"r0": 150.0}), _edit(network__rtt_ms={"r0": 150.0, "r1": 90.0})),
    (api.Overrides(pricing_model="spot"), _edit(hardware__pricing_model="spot")),
    (api.Overrides(pricing_model="reserved-1y"), _edit(hardware__pricing_model="reserved-1y")),
    (api.Overrides(discount_percent={"aws": 30.0}), _edit(hardware__discount_percent={"aws": 30.0})),
    (api.Overrides(edge_devices=["pi"]), _edit(hardware__edge=["pi"])),
    (api.Overrides(edge_devices=[]), _edit(hardware__edge=[])),
    (api.Overrides(cloud=[CloudCandidate(provider="aws", regions=["r1"])]),
     _edit(hardware__cloud=[{"provider": "aws", "regions": ["r1"]}])),
    (api.Overrides(cloud=[CloudCandidate(provider="aws", regions=["r0"], instance_types=["g1"])],
                   slo_ms=40), _edit(hardware__cloud=[{"provider": "aws", "regions": ["r0"],
                                                       "instance_types": ["g1"]}], slo__latency_ms=40)),
    (api.Overrides(estimated_latency="upper-band", slo_ms=90),
     _edit(solver__estimated_latency="upper-band", slo__latency_ms=90)),
    (api.Overrides(objective="latency"), _edit()),
]


def comparable(plan) -> dict:
    """A plan's content without what differs between two runs (clock, solve time)."""
    data = plan.model_dump(mode="json")
    data["provenance"].pop("generated_at")
    data["solver"].pop("wall_time_s")
    return data


def test_twenty_replans_from_one_workspace_equal_plans_from_scratch():
    offers, profiles, io_bytes = two_model_tables()
    base = two_model_spec()
    ws = api.Workspace(parse_spec(base), offers_table=offers, profiles_table=profiles, io_bytes=io_bytes)
    statuses = set()
    assert len(CASES) >= 20
    for overrides, edit in CASES:
        warm = ws.plan(overrides, analyse=False)
        edited = parse_spec(edit(copy.deepcopy(base)))
        fresh = api.Workspace(edited, offers_table=offers, profiles_table=profiles, io_bytes=io_bytes)
        cold = fresh.plan(objective=overrides.objective, analyse=False)
        assert comparable(warm.plan) == comparable(cold.plan), overrides
        assert warm.spec == edited
        statuses.add(warm.plan.status)
    # the cases move the answer: feasible and infeasible plans among them
    assert {"optimal", "infeasible"} <= statuses
    # the workspace's own spec is untouched by the what-ifs
    assert ws.spec == parse_spec(base)


def test_a_replan_reuses_the_built_problem_and_rebuilds_only_when_its_inputs_change(monkeypatch):
    offers, profiles, io_bytes = two_model_tables()
    ws = api.Workspace(parse_spec(two_model_spec()), offers_table=offers, profiles_table=profiles,
                       io_bytes=io_bytes)
    builds = []
    real = api.build_problem
    monkeypatch.setattr(api, "build_problem", lambda *a, **kw: builds.append(1) or real(*a, **kw))
    first = ws.plan(api.Overrides(slo_ms=120), analyse=False)
    again = ws.plan(api.Overrides(slo_ms=120), analyse=False)
    assert len(builds) == 1 and again.problem is first.problem
    ws.plan(api.Overrides(sites=80), analyse=False)
    assert len(builds) == 2
    ws.plan(api.Overrides(slo_ms=120), analyse=False)  # still cached
    assert len(builds) == 2


def test_bad_override_names_the_spec_field_and_leaves_the_workspace_usable():
    offers, profiles, io_bytes = two_model_tables()
    ws = api.Workspace(parse_spec(two_model_spec()), offers_table=offers, profiles_table=profiles,
                       io_bytes=io_bytes)
    before = ws.plan(analyse=False).plan
    with pytest.raises(SpecError) as exc:
        ws.plan(api.Overrides(edge_devices=["toaster"]))
    assert exc.value.field == "hardware.edge[0]" and "toaster" in exc.value.message
    with pytest.raises(SpecError) as exc:
        ws.plan(api.Overrides(cloud=[CloudCandidate(provider="aws", regions=["r9"])]))
    assert "rtt_ms" in exc.value.message or "r9" in exc.value.message
    assert comparable(ws.plan(analyse=False).plan) == comparable(before)


def test_evaluate_and_frontier_answer_from_the_same_workspace():
    offers, profiles, io_bytes = two_model_tables()
    ws = api.Workspace(parse_spec(two_model_spec()), offers_table=offers, profiles_table=profiles,
                       io_bytes=io_bytes)
    best = ws.plan(analyse=False)
    what_if = ws.evaluate({p.piece: p.option for p in best.plan.placements})
    assert what_if.plan.costs.monthly_usd == pytest.approx(best.plan.costs.monthly_usd)
    listed = ws.evaluate([f"{p.piece}={p.option}" for p in best.plan.placements])
    assert listed.plan.costs.monthly_usd == pytest.approx(best.plan.costs.monthly_usd)
    points = ws.frontier(max_points=6)
    assert points and points[0].costs.monthly_usd <= best.plan.costs.monthly_usd + 1e-6
    assert [p.latency.p95_ms for p in points] == sorted((p.latency.p95_ms for p in points), reverse=True)


def test_offers_are_a_query_over_the_loaded_table():
    offers, profiles, io_bytes = two_model_tables()
    spec = parse_spec({**two_model_spec(), "hardware": {**two_model_spec()["hardware"],
                                                        "discount_percent": {"aws": 50.0}}})
    ws = api.Workspace(spec, offers_table=offers, profiles_table=profiles, io_bytes=io_bytes)
    assert list(ws.offers(regions=["r1"])[ot.OFFER]) == ["aws:r1:c1"]
    assert set(ws.offers(tiers=["edge"])[ot.OFFER]) == {"edge:pi", "edge:nano"}
    list_price = ws.offers(instance_types=["g1"])[ot.HOURLY_USD].iloc[0]
    team_price = ws.offers(instance_types=["g1"], team_prices=True)[ot.HOURLY_USD].iloc[0]
    assert team_price == pytest.approx(list_price / 2)


def test_profiles_are_taken_once_and_reused_by_every_replan(monkeypatch, tmp_path):
    """A real tiny model, profiled by the real profiler once; re-plans never profile again."""
    from test_tuning import two_kernel_model

    import profiles.profiler as profiler

    two_kernel_model(tmp_path / "tiny.onnx")
    write_single_model_spec(tmp_path / "app.yaml", app="tiny", model="alpha", onnx_path=tmp_path / "tiny.onnx")
    calls = []
    real = profiler.profile_pieces
    monkeypatch.setattr(profiler, "profile_pieces", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    ws = api.Workspace.open(tmp_path / "app.yaml")
    assert not calls  # opening checks the files; it does not profile
    first = ws.plan(analyse=False)
    assert len(calls) == 1 and first.plan.feasible
    for rate in (2.0, 4.0, 8.0):
        ws.plan(api.Overrides(rate_per_site_rps=rate), analyse=False)
    assert len(calls) == 1
    sources = set(ws.profiles[pt.SOURCE])
    assert "measured-local" in sources and "estimated" in sources


def test_tuned_rows_reach_a_workspace_plan_when_a_tuning_database_exists(tmp_path, monkeypatch):
    """No CLI and no registry: a Workspace tunes, and a fresh Workspace plans with the tuned row."""
    from test_tuning import two_kernel_model

    from profiles.hardware import local_hardware

    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(tmp_path / "cache"))
    two_kernel_model(tmp_path / "two.onnx")
    local = local_hardware().name
    spec = tmp_path / "app.yaml"
    write_single_model_spec(spec, app="tuned", model="two", onnx_path=tmp_path / "two.onnx")
    before = api.Workspace.open(spec)
    assert "tvm-tuned" not in set(before.profiles[pt.RUNTIME])
    outcome = before.tune(budget="2m", trials_per_task=2)
    assert [r.piece for r in outcome.results] == ["two"] and not outcome.failed
    tuned = outcome.results[0].row
    assert tuned["runtime"] == "tvm-tuned" and tuned["hardware"] == local

    fresh = api.Workspace.open(spec)  # a new Workspace finds the tuned row through its providers
    rows = fresh.profiles[(fresh.profiles[pt.RUNTIME] == "tvm-tuned") & (fresh.profiles[pt.HARDWARE] == local)]
    assert len(rows) == 1
    assert rows[pt.LATENCY_MS_P50].iloc[0] == pytest.approx(tuned["latency_ms_p50"], rel=1e-6)
    plan = fresh.plan(analyse=False).plan
    assert plan.feasible
    # the tuned row is in the table the planner chose from
    assert "tvm-tuned" in set(before.profiles[pt.RUNTIME])  # the tuning Workspace re-read it too
