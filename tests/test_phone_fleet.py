"""A device population: phones by SoC class, owned by their users. The share of users served
within the SLO (on-device and in total), the cloud cost of the offloaded share, and a population
where `slo.min_site_share` binds. Hand-sized tables; the bundled example is parsed and its device
ids checked against the real catalog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from factories import build, offer_row, profile_row

from placement.evaluate import evaluate
from placement.plan import make_plan
from placement.population import population_line, population_rows, population_summary
from placement.resolve import check_hardware_ids
from placement.solver import solve
from placement.spec import SpecError, parse_spec
from placement.tables import load_offers
from pricing import table as ot
from profiles import table as pt

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "phone-app.yaml"

# p95 on each phone class (ms): flagship and iPhone meet 150 ms, mid-range and older do not
PHONES = {"flagship": 70.0, "iphone": 60.0, "midrange": 200.0, "older": 450.0}
SHARES = {"flagship": 0.3, "iphone": 0.3, "midrange": 0.25, "older": 0.15}
POWER_W = 6.27  # a phone's power: never charged when its users own it


def tables(power_w: float = 6.0):
    offers = pd.DataFrame(
        [offer_row(f"edge:{n}", "edge", n, f"hw-{n}", unit=500.0, power=power_w, memory_gib=6.0) for n in PHONES]
        + [offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.1, spot=0.03)],
        columns=ot.OFFER_COLUMNS)
    profiles = pd.DataFrame(
        [profile_row("det", f"hw-{n}", p95 / 1.2, p95) for n, p95 in PHONES.items()]
        + [profile_row("det", "hw-c1", 10.0, 12.0)], columns=pt.PROFILE_COLUMNS)
    return offers, profiles, {"det": (60_000, 4_000)}


def population_spec(min_share: float, owned_by: str = "users"):
    return {
        "name": "phones",
        "models": [{"name": "det", "onnx": "zoo:mobilenetv2"}],
        "dataflow": [{"from": "source", "to": "det", "bytes": 60_000}, {"from": "det", "to": "sink"}],
        "load": {"sites": 1000, "rate_per_site_rps": 0.05},
        "slo": {"latency_ms": 150.0, "percentile": 95, "min_site_share": min_share},
        "monthly_budget_usd": 1e6,
        "fleet": [{"name": n, "share": s, "device": n, "owned_by": owned_by} for n, s in SHARES.items()],
        "hardware": {"cloud": [{"provider": "aws", "regions": ["r0"]}]},
        "network": {"uplink_mbps": 10.0, "downlink_mbps": 50.0, "rtt_ms": {"r0": 40.0}},
        "solver": {"max_extra_replicas": 1},
    }


def planned(min_share: float, owned_by: str = "users", power_w: float = 6.0):
    offers, profiles, io = tables(power_w)
    problem = build(population_spec(min_share, owned_by), offers, profiles, io)
    result = solve(problem)
    assert result.status == "optimal"
    ev = evaluate(problem, result.assignment)
    assert ev.feasible
    return make_plan(problem, result, ev, tvm_version=None), ev


def test_the_share_constraint_binds_offloading_only_what_the_share_needs():
    # 60 % of the users meet the SLO on their own phones; 85 % needs the mid-range phones
    # offloaded (25 %), not the older ones (15 %), which are left missing the SLO
    loose, _ = planned(0.6, power_w=POWER_W)
    tight, _ = planned(0.85, power_w=POWER_W)
    s_loose, s_tight = population_summary(loose), population_summary(tight)
    assert s_loose["within_slo"] == pytest.approx(0.6) and s_loose["cloud_monthly_usd"] == pytest.approx(0.0)
    assert s_loose["on_device_within_slo"] == pytest.approx(0.6) and s_loose["offloaded"] == pytest.approx(0.0)
    assert s_tight["within_slo"] == pytest.approx(0.85) and s_tight["on_device_within_slo"] == pytest.approx(0.6)
    assert s_tight["offloaded"] == pytest.approx(0.25) and s_tight["cloud_monthly_usd"] > 0
    rows = {r["segment"]: r for r in population_rows(tight)}
    assert rows["midrange"]["runs"] == "offloaded" and rows["midrange"]["meets_slo"]
    assert rows["older"]["runs"] == "on-device" and not rows["older"]["meets_slo"]
    assert tight.costs.monthly_usd > loose.costs.monthly_usd  # the binding share costs money
    # everyone: the older phones offload too
    everyone, _ = planned(1.0, power_w=POWER_W)
    assert population_summary(everyone)["within_slo"] == pytest.approx(1.0)
    assert population_summary(everyone)["offloaded"] == pytest.approx(0.4)
    line = population_line(tight)
    assert "60% on-device, 85% in total (required 85%)" in line and "25% offloaded" in line


def test_phones_owned_by_users_charge_neither_price_nor_power():
    plan, ev = planned(0.6, owned_by="users", power_w=POWER_W)
    edge = [i for i in ev.cost_items if i.kind in ("edge-capex", "edge-power")]
    assert edge and all(i.monthly_usd == 0 and "owned by its users" in i.source for i in edge)
    assert plan.costs.monthly_usd == pytest.approx(0.0)
    assert {s.owned_by for s in plan.segments} == {"users"}
    # the same phones bought and powered by the operator cost money: the cloud is cheaper then
    operator, _ = planned(0.6, owned_by="operator", power_w=POWER_W)
    assert operator.costs.monthly_usd > 0 and population_summary(operator)["offloaded"] > 0


def test_a_segment_owned_by_users_is_owned():
    spec = parse_spec(population_spec(0.85), origin="test")
    assert all(seg.owned_by == "users" and seg.owned for seg in spec.fleet)
    bad = population_spec(0.85)
    bad["fleet"][0]["owned"] = False
    with pytest.raises(SpecError, match="owned_by: users means the devices are owned"):
        parse_spec(bad, origin="test")


def test_the_bundled_phone_example_names_catalog_devices():
    spec = parse_spec(yaml.safe_load(EXAMPLE.read_text()), origin=str(EXAMPLE))
    check_hardware_ids(spec, load_offers(), str(EXAMPLE))
    assert sum(seg.share for seg in spec.fleet) == pytest.approx(1.0)
    assert {seg.owned_by for seg in spec.fleet} == {"users"} and spec.slo.min_site_share == 0.95
