"""Mixed edge fleets: segments of sites with their own devices, shared cloud pools, and an SLO
required on a share of the sites. Hand-checked cases, then brute force over `evaluate`."""

from __future__ import annotations

import itertools
import random

import pandas as pd
import pytest
from factories import build, offer_row, profile_row

from placement.evaluate import AssignmentError, evaluate, resolve_assignment
from placement.plan import Plan, make_plan
from placement.report import markdown_summary
from placement.solver import solve
from placement.spec import SpecError, parse_spec
from pricing import table as ot
from profiles import table as pt

PI5_POWER_USD = 5.0 / 1000 * 730 * 0.15  # per device per month
PI5_CAPEX_USD = 80.0 / 36


def tables(pi4_p50=300.0, cloud_p50=10.0):
    offers = pd.DataFrame([
        offer_row("edge:pi5", "edge", "pi5", "hw-pi5", unit=80.0, power=5.0, memory_gib=8.0),
        offer_row("edge:pi4", "edge", "pi4", "hw-pi4", unit=55.0, power=4.0, memory_gib=8.0),
        offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.1, spot=0.03),
    ], columns=ot.OFFER_COLUMNS)
    profiles = pd.DataFrame([
        profile_row("det", "hw-pi5", 40.0, 50.0),
        profile_row("det", "hw-pi4", pi4_p50, pi4_p50 * 1.2),
        profile_row("det", "hw-c1", cloud_p50, cloud_p50 * 1.2),
    ], columns=pt.PROFILE_COLUMNS)
    return offers, profiles, {"det": (150_528, 4_000)}


def fleet_spec(segments, *, sites=100, rate=1.0, slo_ms=250.0, rtt=20.0, min_share=None):
    slo = {"latency_ms": slo_ms, "percentile": 95}
    if min_share is not None:
        slo["min_site_share"] = min_share
    return {
        "name": "fleet",
        "models": [{"name": "det", "onnx": "zoo:resnet18"}],
        "dataflow": [{"from": "source", "to": "det", "bytes": 20_000}, {"from": "det", "to": "sink"}],
        "load": {"sites": sites, "rate_per_site_rps": rate},
        "slo": slo,
        "monthly_budget_usd": 1e6,
        "fleet": segments,
        "hardware": {"cloud": [{"provider": "aws", "regions": ["r0"]}]},
        "network": {"uplink_mbps": 5.0, "downlink_mbps": 100.0, "rtt_ms": {"r0": rtt}},
        "solver": {"max_extra_replicas": 1},
    }


def brute_force(problem):
    """Cheapest feasible assignment by trying every combination of options."""
    best = None
    for combo in itertools.product(*(problem.options[p] for p in problem.pieces)):
        ev = evaluate(problem, dict(zip(problem.pieces, combo)))
        if ev.feasible and (best is None or ev.monthly_usd < best.monthly_usd - 1e-9):
            best = ev
    return best


def test_a_slow_device_offloads_and_the_pool_is_sized_for_its_segment_alone():
    offers, profiles, io = tables()
    problem = build(fleet_spec([
        {"name": "new", "share": 0.6, "device": "pi5", "owned": True},
        {"name": "old", "share": 0.4, "device": "pi4"},
    ]), offers, profiles, io)
    assert problem.pieces == ("new/det", "old/det")
    result = solve(problem)
    assert result.status == "optimal"
    ev = evaluate(problem, result.assignment)
    assert ev.feasible
    new, old = ev.assignment["new/det"], ev.assignment["old/det"]
    # the Pi 5 runs the model in 50 ms; the Pi 4 would take 360 ms > 250 ms, so it offloads
    assert new.tier == "edge" and new.device_offer == "edge:pi5@new"
    assert old.tier == "cloud" and old.pool_segments == ("old",)
    # 40 sites x 1 rps x 10 ms = 0.4 replicas of load: one replica under the 0.7 cap
    assert old.replicas == 1 and old.utilisation == pytest.approx(0.4)
    items = {(i.kind, i.item): i for i in ev.cost_items}
    # owned Pi 5s: no capex, power at 60 sites only; the unused Pi 4s cost nothing
    assert items["edge-capex", "pi5 (new)"].monthly_usd == 0.0
    assert items["edge-power", "pi5 (new)"].monthly_usd == pytest.approx(60 * PI5_POWER_USD)
    assert not any("pi4" in item for _, item in items)
    assert items["compute", "det on aws:r0:c1 for old"].monthly_usd == pytest.approx(73.0)
    # answers leave the cloud for 40% of the requests only
    egress_gb = 4_000 * 0.4 * 100 * 730 * 3600 / 1e9
    assert items["egress", "aws internet egress"].quantity == pytest.approx(egress_gb)
    assert ev.segment_latency_ms["new"] < ev.segment_latency_ms["old"] <= 250.0
    assert result.objective_value == pytest.approx(ev.monthly_usd, abs=0.01)
    assert brute_force(problem).monthly_usd == pytest.approx(ev.monthly_usd, abs=0.01)


def test_segments_share_one_pool_when_it_is_cheaper_and_pay_for_it_once():
    offers, profiles, io = tables()
    # 50 sites x 0.6 rps x 10 ms = 0.3 replicas of load per segment: one pool of one replica
    # serves both (0.6), where a pool per segment would be two replicas.
    problem = build(fleet_spec([
        {"name": "a", "share": 0.5, "device": "pi4"},
        {"name": "b", "share": 0.5, "device": "pi4"},
    ], rate=0.6), offers, profiles, io)
    result = solve(problem)
    ev = evaluate(problem, result.assignment)
    a, b = ev.assignment["a/det"], ev.assignment["b/det"]
    assert a.pool == b.pool and a.pool_segments == ("a", "b") and a.replicas == 1
    compute = [i for i in ev.cost_items if i.kind == "compute"]
    assert len(compute) == 1 and compute[0].monthly_usd == pytest.approx(73.0)
    assert ev.monthly_usd == pytest.approx(brute_force(problem).monthly_usd, abs=0.01)

    # the checker refuses a pool that only one of its segments uses
    own_b = next(o for o in problem.options["b/det"] if o.pool_segments == ("b",) and o.replicas == 1)
    broken = evaluate(problem, {"a/det": a, "b/det": own_b})
    assert any(v.startswith("pool:") for v in broken.violations)

    # a what-if naming the model places it in every segment; same offer -> one shared pool
    chosen = resolve_assignment(problem, {"det": "aws:r0:c1"})
    assert {o.pool_segments for o in chosen.values()} == {("a", "b")}
    assert evaluate(problem, chosen).feasible
    # "edge" names each segment's own device; a segment may also be placed on its own
    mixed = resolve_assignment(problem, {"a/det": "edge", "b/det": "aws:r0:c1"})
    assert mixed["a/det"].device_offer == "edge:pi4@a" and mixed["b/det"].pool_segments == ("b",)
    with pytest.raises(AssignmentError, match="unknown piece 'ghost'"):
        resolve_assignment(problem, {"ghost": "edge"})


def test_slo_on_a_share_of_sites():
    offers, profiles, io = tables(pi4_p50=300.0)
    segments = [{"name": "new", "share": 0.9, "device": "pi5"},
                {"name": "old", "share": 0.1, "device": "pi4"}]
    # a 400 ms round trip rules the cloud out; the Pi 4 takes 360 ms > 250 ms
    everywhere = build(fleet_spec(segments, rtt=400.0), offers, profiles, io)
    assert solve(everywhere).status == "infeasible"

    most = build(fleet_spec(segments, rtt=400.0, min_share=0.85), offers, profiles, io)
    result = solve(most)
    assert result.status == "optimal"
    ev = evaluate(most, result.assignment)
    assert ev.feasible and ev.site_share_meeting_slo == pytest.approx(0.9)
    assert ev.latency_ms == pytest.approx(ev.segment_latency_ms["new"])
    assert ev.segment_latency_ms["old"] > 250.0
    plan = make_plan(most, result, ev, tvm_version=None)
    assert [(s.name, s.sites, s.meets_slo) for s in plan.segments] == [("new", 90, True), ("old", 10, False)]
    assert plan.latency.site_share_meeting_slo == pytest.approx(0.9)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    summary = markdown_summary(plan)
    assert "## Fleet segments" in summary and "met on 90%" in summary

    # a share the fast segment alone cannot cover is infeasible again
    assert solve(build(fleet_spec(segments, rtt=400.0, min_share=0.95), offers, profiles, io)).status == "infeasible"


@pytest.mark.parametrize("seed", range(6))
def test_fleet_optimum_equals_brute_force(seed):
    rng = random.Random(seed)
    offers = pd.DataFrame([
        offer_row("edge:pi5", "edge", "pi5", "hw-pi5", unit=80.0, power=5.0, memory_gib=8.0),
        offer_row("edge:pi4", "edge", "pi4", "hw-pi4", unit=55.0, power=4.0, memory_gib=8.0),
        offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=rng.uniform(0.05, 0.3)),
        offer_row("aws:r0:c2", "cloud", "c2", "hw-c2", hourly=rng.uniform(0.3, 0.9)),
    ], columns=ot.OFFER_COLUMNS)
    rows = []
    for model in ("a", "b"):
        base = rng.uniform(20, 120)
        for hw, factor in (("hw-pi5", 1.0), ("hw-pi4", 2.5), ("hw-c1", 0.25), ("hw-c2", 0.08)):
            p50 = base * factor * rng.uniform(0.8, 1.2)
            rows.append(profile_row(model, hw, p50, p50 * 1.3, memory_mb=rng.uniform(100, 3000)))
    spec = fleet_spec([{"name": "x", "share": 0.5, "device": "pi5"},
                       {"name": "y", "share": 0.5, "device": "pi4", "owned": rng.random() < 0.5}],
                      sites=20, rate=rng.uniform(0.5, 3.0), slo_ms=rng.uniform(150, 400),
                      min_share=rng.choice([None, 0.5]))
    spec["models"] = [{"name": "a", "onnx": "zoo:resnet18"}, {"name": "b", "onnx": "zoo:resnet18"}]
    spec["dataflow"] = [{"from": "source", "to": "a", "bytes": 20_000}, {"from": "a", "to": "b", "bytes": 5_000},
                        {"from": "b", "to": "sink", "bytes": 1_000}]
    problem = build(spec, offers, pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS),
                    {"a": (20_000, 5_000), "b": (5_000, 1_000)})
    result = solve(problem)
    expected = brute_force(problem)
    if expected is None:
        assert result.status == "infeasible"
        return
    ev = evaluate(problem, result.assignment)
    assert ev.feasible
    assert ev.monthly_usd == pytest.approx(expected.monthly_usd, abs=0.02)


@pytest.mark.parametrize("segments, field, words", [
    ([{"name": "a", "share": 0.5, "device": "pi5"}, {"name": "b", "share": 0.4, "device": "pi4"}],
     "fleet", "add up to 0.9"),
    ([{"name": "a", "share": 0.333, "device": "pi5"}, {"name": "b", "share": 0.667, "device": "pi4"}],
     "fleet[0].share", "whole number of sites"),
    ([{"name": "a", "share": 0.5, "device": "pi5"}, {"name": "a", "share": 0.5, "device": "pi4"}],
     "fleet[1].name", "appears twice"),
    ([{"name": "a", "share": 1.5, "device": "pi5"}], "fleet[0].share", "<= 1"),
    ([{"name": "a", "share": 1.0, "device": "pi5", "colour": "red"}], "fleet[0].colour", "unknown key"),
])
def test_fleet_spec_errors_name_the_field(segments, field, words):
    with pytest.raises(SpecError) as err:
        parse_spec(fleet_spec(segments))
    assert err.value.field == field and words in str(err.value)


def test_fleet_devices_must_exist_and_replace_hardware_edge():
    from placement.resolve import check_hardware_ids

    offers, _, _ = tables()
    spec = parse_spec(fleet_spec([{"name": "a", "share": 1.0, "device": "pi9"}]))
    with pytest.raises(SpecError, match=r"fleet\[0\]\.device: unknown edge device 'pi9'"):
        check_hardware_ids(spec, offers)
    data = fleet_spec([{"name": "a", "share": 1.0, "device": "pi5"}])
    data["hardware"]["edge"] = ["pi5"]
    with pytest.raises(SpecError, match="hardware.edge: with fleet segments"):
        parse_spec(data)


def test_the_mixed_fleet_example_plans_from_a_profile_csv(tmp_path, monkeypatch, capsys):
    """The shipped example through the CLI, with latencies from a CSV (no TVM): segments differ."""
    from pathlib import Path

    from test_plan_cli import run_cli

    from placement import api
    from placement.spec import load_spec

    example = Path(__file__).resolve().parents[1] / "examples" / "mixed-fleet.yaml"
    spec, _ = load_spec(example)
    per_hw = {"arm-cortex-a72-4c": (120.0, 420.0), "arm-cortex-a76-4c": (45.0, 140.0),
              "nvidia-orin-nano": (8.0, 20.0), "nvidia-t4": (2.0, 4.0)}
    rows = []
    for hw in api.candidate_hardware(spec, api.load_offers()):
        screener, classifier = per_hw.get(hw, (9.0, 25.0))
        rows.append(profile_row("screener", hw, screener, screener * 1.2, memory_mb=80.0))
        rows.append(profile_row("classifier", hw, classifier, classifier * 1.2, memory_mb=200.0))
    csv = tmp_path / "profiles.csv"
    pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS).to_csv(csv, index=False)

    code, out, err = run_cli(monkeypatch, capsys, "plan", str(example), "--profiles", str(csv),
                             "-o", str(tmp_path / "plan.json"), "--summary", str(tmp_path / "summary.md"))
    assert code == 0, err
    plan = Plan.read(tmp_path / "plan.json")
    assert plan.feasible and plan.status == "optimal"
    assert [s.name for s in plan.segments] == ["pi5-stores", "pi4-stores", "flagship"]
    assert plan.latency.site_share_meeting_slo >= 0.85
    where = {p.piece: p.tier for p in plan.placements}
    # the Pi 4 (504 ms p95) cannot classify within 300 ms
    assert where["pi4-stores/classifier"] == "cloud"
    pools = {(p.model, p.option) for p in plan.placements if p.tier == "cloud"}
    compute = [c for c in plan.costs.items if c.kind == "compute"]
    assert len(compute) == len(pools)  # a shared pool is paid once
    assert "segment pi4-stores" in out
    assert "## Fleet segments" in (tmp_path / "summary.md").read_text()


def test_an_unreachable_site_share_is_explained():
    from placement.explain import explain_infeasible

    offers, profiles, io = tables(pi4_p50=300.0)
    segments = [{"name": "new", "share": 0.9, "device": "pi5"},
                {"name": "old", "share": 0.1, "device": "pi4"}]
    problem = build(fleet_spec(segments, rtt=400.0, min_share=0.95), offers, profiles, io)
    why = explain_infeasible(problem)
    assert why.binding == ["slo", "site-share"]  # together: dropping either one makes a plan
    assert why.largest_site_share == pytest.approx(0.9)
    assert "at most 90% of sites can meet 250 ms within the budget; the spec asks for 95%." in why.messages
    # every site required: the SLO binds, and the same nearest feasible share is offered
    strict = build(fleet_spec(segments, rtt=400.0), offers, profiles, io)
    why = explain_infeasible(strict)
    assert why.binding == ["slo"] and why.largest_site_share == pytest.approx(0.9)


def test_split_models_in_a_fleet_share_the_tail_pool():
    offers, profiles, io = tables(pi4_p50=300.0)
    # the head is light, its output small; every segment can run it on its own device
    for row in (profile_row("det@t1:head", "hw-pi5", 6.0, 8.0, memory_mb=40.0),
                profile_row("det@t1:head", "hw-pi4", 15.0, 18.0, memory_mb=40.0),
                profile_row("det@t1:head", "hw-c1", 1.0, 1.2),
                profile_row("det@t1:tail", "hw-pi5", 34.0, 42.0),
                profile_row("det@t1:tail", "hw-pi4", 285.0, 342.0),
                profile_row("det@t1:tail", "hw-c1", 9.0, 10.8)):
        profiles.loc[len(profiles)] = row
    io.update({"det@t1:head": (150_528, 3_000), "det@t1:tail": (3_000, 4_000)})
    spec = fleet_spec([{"name": "a", "share": 0.5, "device": "pi4"},
                       {"name": "b", "share": 0.5, "device": "pi4"}], rate=0.6)
    spec["models"][0]["split"] = "auto"
    # the whole frame crosses a thin uplink slowly; the 3 kB cut tensor does not
    spec["dataflow"][0]["bytes"] = 400_000
    problem = build(spec, offers, profiles, io)
    result = solve(problem)
    ev = evaluate(problem, result.assignment)
    a, b = ev.assignment["a/det"], ev.assignment["b/det"]
    assert a.cut == "t1" and b.cut == "t1" and a.pool == b.pool and a.pool_segments == ("a", "b")
    assert a.head.location == "edge:pi4@a" and b.head.location == "edge:pi4@b"
    assert set(ev.device_load) == {"edge:pi4@a", "edge:pi4@b"}
    assert ev.monthly_usd == pytest.approx(brute_force(problem).monthly_usd, abs=0.01)
    plan = make_plan(problem, result, ev, tvm_version=None)
    assert {p.head.device for p in plan.placements} == {"pi4"}
    assert "split at t1: head on edge pi4" in markdown_summary(plan)
