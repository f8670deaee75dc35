"""Plans round-trip through JSON and validate against docs/plan.schema.json; the CLI plans from
CSVs without TVM and answers bad input with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from factories import one_model_spec, one_model_tables, run_cli

from placement import api
from placement.plan import Plan, plan_json_schema
from placement.report import markdown_summary
from placement.spec import parse_spec, spec_json_schema

DOCS = Path(__file__).parents[1] / "docs"


@pytest.fixture
def csv_inputs(tmp_path):
    offers, profiles, io_bytes = one_model_tables()
    offers.to_csv(tmp_path / "offers.csv", index=False)
    profiles.to_csv(tmp_path / "profiles.csv", index=False)
    spec = one_model_spec(sites=100, uplink=50.0)
    spec["models"][0]["onnx"] = "zoo:mobilenetv2"
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path



def solved_plan():
    offers, profiles, io_bytes = one_model_tables()
    spec = parse_spec(one_model_spec(sites=100, uplink=50.0))
    return api.Workspace(spec, offers_table=offers, profiles_table=profiles, io_bytes=io_bytes).plan()


def test_plan_json_round_trips_and_validates_against_the_committed_schema(tmp_path):
    outcome = solved_plan()
    plan = outcome.plan
    assert plan.status == "optimal" and plan.feasible
    path = tmp_path / "plan.json"
    plan.write(path)
    again = Plan.read(path)
    assert again == plan
    schema = json.loads((DOCS / "plan.schema.json").read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)
    # a plan missing a required field does not validate
    broken = json.loads(path.read_text())
    del broken["costs"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_committed_schemas_are_current():
    assert json.loads((DOCS / "plan.schema.json").read_text()) == plan_json_schema()
    assert json.loads((DOCS / "spec.schema.json").read_text()) == spec_json_schema()


def test_plan_numbers_are_the_checkers_and_say_where_they_come_from():
    outcome = solved_plan()
    plan = outcome.plan
    assert plan.costs.monthly_usd == pytest.approx(outcome.evaluation.monthly_usd, abs=0.01)
    assert plan.latency.p95_ms == pytest.approx(outcome.evaluation.latency_ms, abs=1e-3)
    assert sum(i.monthly_usd for i in plan.costs.items) == pytest.approx(plan.costs.monthly_usd, abs=0.05)
    for p in plan.placements:
        assert p.latency_source in ("measured-local", "measured-rpc", "estimated", "imported")
        assert p.price_date
    assert plan.provenance.price_date == "2026-01-01"
    assert {b.name for b in plan.baselines} == {"all-cloud", "all-edge", "best single cut", "greedy per stage"}
    cheapest_baseline = min(b.monthly_usd for b in plan.baselines if b.feasible)
    assert plan.costs.monthly_usd <= cheapest_baseline + 0.01
    # test prices are dated 2026-01-01: far older than the 30-day default, so the plan warns
    assert any(n.startswith("warning: prices dated 2026-01-01") for n in plan.notes)
    summary = markdown_summary(plan)
    for heading in ("## Bill of materials", "## Monthly cost by item", "## Predicted latency per path",
                    "## Where the numbers come from"):
        assert heading in summary


def test_cli_plans_from_csvs_without_profiling(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    code, out, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"), "-o", str(d / "plan.json"),
                             "--summary", str(d / "summary.md"))
    assert code == 0, err
    plan = Plan.read(d / "plan.json")
    assert plan.status == "optimal"
    assert plan.placements[0].offer == "aws:r0:c1"
    assert "imported" in out
    assert (d / "summary.md").read_text().startswith("# Placement plan: one-model")


def test_cli_evaluate_reports_broken_constraints(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    spec = yaml.safe_load((d / "app.yaml").read_text())
    spec["slo"]["latency_ms"] = 150.0
    (d / "tight.yaml").write_text(yaml.safe_dump(spec))
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", str(d / "tight.yaml"), "--assign", "det=edge:pi",
                             "--profiles", str(d / "profiles.csv"), "--offers", str(d / "offers.csv"), "--json")
    assert code == 1
    plan = json.loads(out)
    assert plan["status"] == "evaluated"
    assert any(v.startswith("SLO") for v in plan["violations"])


@pytest.mark.parametrize("args,words", [
    (["--assign", "det=edge:toaster"], "no such option"),
    (["--assign", "ghost=edge:pi"], "unknown piece"),
    (["--assign", "det"], "expected piece=offer"),
])
def test_cli_evaluate_bad_assignments(csv_inputs, monkeypatch, capsys, args, words):
    d = csv_inputs
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", str(d / "app.yaml"), *args,
                           "--profiles", str(d / "profiles.csv"), "--offers", str(d / "offers.csv"))
    assert code == 2 and words in err and err.count("\n") == 1


def test_cli_bad_profile_csv_names_file_row_and_column(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    text = (d / "profiles.csv").read_text().splitlines()
    text[2] = text[2].replace("100.0", "-4.0", 1)
    (d / "bad.csv").write_text("\n".join(text) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "bad.csv"),
                           "--offers", str(d / "offers.csv"))
    assert code == 2
    assert "bad.csv" in err and "row 2" in err and "memory_mb" in err and "got -4.0" in err


def test_cli_missing_csv(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    code, _, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "nope.csv"),
                           "--offers", str(d / "offers.csv"))
    assert code == 2 and "nope.csv: no such file" in err


def test_cli_infeasible_plan_explains_itself(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    spec = yaml.safe_load((d / "app.yaml").read_text())
    spec["slo"]["latency_ms"] = 5.0
    (d / "fast.yaml").write_text(yaml.safe_dump(spec))
    code, out, _ = run_cli(monkeypatch, capsys, "plan", str(d / "fast.yaml"), "--profiles", str(d / "profiles.csv"),
                           "--offers", str(d / "offers.csv"), "-o", str(d / "p.json"))
    assert code == 1
    assert "fastest possible p95" in out
    plan = Plan.read(d / "p.json")
    assert plan.explanation.binding == ["slo"]


def test_cli_frontier(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    code, out, err = run_cli(monkeypatch, capsys, "frontier", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"), "--json")
    assert code == 0, err
    points = json.loads(out)
    assert len(points) >= 1
    costs = [p["costs"]["monthly_usd"] for p in points]
    lats = [p["latency"]["p95_ms"] for p in points]
    assert costs == sorted(costs) and lats == sorted(lats, reverse=True)


def test_cli_prices_a_plan_at_spot_with_a_discount(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    code, out, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"), "--pricing-model", "spot", "--discount", "aws=50",
                             "-o", str(d / "spot.json"))
    assert code == 0, err
    plan = Plan.read(d / "spot.json")
    compute = [i for i in plan.costs.items if i.kind == "compute"]
    # 2 replicas x spot 0.03 $/h less 50% x 730 h
    assert compute[0].monthly_usd == pytest.approx(2 * 0.03 * 0.5 * 730, abs=0.01)
    assert plan.costs.pricing_model == "spot"
    assert plan.costs.by_pricing_model["on-demand"] > plan.costs.by_pricing_model["spot"]
    assert "discount" in compute[0].source
    code, _, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                           "--offers", str(d / "offers.csv"), "--discount", "aws=abc")
    assert code == 2 and "--discount" in err


def test_an_offer_without_a_price_at_the_pricing_model_is_named_not_dropped_silently(csv_inputs, monkeypatch,
                                                                                        capsys):
    d = csv_inputs  # aws:r0:c1 has on-demand, spot and 1-year prices, no 3-year one
    code, out, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"), "--pricing-model", "reserved-3y",
                             "-o", str(d / "r3.json"))
    assert code == 0, err
    assert "note: 1 candidate offer(s) have no reserved-3y price and were left out: aws:r0:c1" in err
    plan = Plan.read(d / "r3.json")
    assert any(n.endswith("left out: aws:r0:c1") for n in plan.notes)
    assert all(p.offer != "aws:r0:c1" for p in plan.placements)
    code, out, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"), "--pricing-model", "reserved-1y")
    assert code == 0 and "left out" not in err


def test_cli_estimated_latency_option(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    code, _, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                           "--offers", str(d / "offers.csv"), "--estimated-latency", "maybe")
    assert code == 2 and "--estimated-latency" in err and err.count("\n") == 1
    code, out, err = run_cli(monkeypatch, capsys, "plan", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"), "--estimated-latency", "upper-band",
                             "-o", str(d / "plan.json"), "--json")
    assert code == 0, err
    assert any("top of their error band" in n for n in json.loads(out)["notes"])


def test_frontier_rows_price_each_step_and_tell_close_latencies_apart():
    from types import SimpleNamespace

    from placement.report import frontier_rows

    def plan(usd, ms):
        return SimpleNamespace(costs=SimpleNamespace(monthly_usd=usd),
                               latency=SimpleNamespace(p95_ms=ms, slo_ms=300.0), placements=[],
                               provenance=SimpleNamespace(price_date="2026-11-25",
                                                          profile_sources={"measured-local": 1, "estimated": 1}))

    rows = frontier_rows([plan(111.37, 327.398), plan(858.62, 53.7097), plan(1560.99, 53.6605)])
    # 53.7097 and 53.6605 both print as 53.7 with one decimal
    assert [r["latency_label"] for r in rows] == ["327.40", "53.71", "53.66"]
    assert rows[0]["usd_per_ms_saved"] is None
    assert rows[1]["usd_per_ms_saved"] == pytest.approx((858.62 - 111.37) / (327.398 - 53.7097))
    assert rows[2]["usd_per_ms_saved"] == pytest.approx((1560.99 - 858.62) / (53.7097 - 53.6605))
    assert rows[0]["latency_from"] == "estimated, measured-local"
    assert rows[0]["price_date"] == "2026-11-25"
    assert [r["meets_slo"] for r in rows] == [False, True, True]
    far_apart = frontier_rows([plan(1.0, 300.0), plan(2.0, 200.0)])
    assert [r["latency_label"] for r in far_apart] == ["300.0", "200.0"]


def test_cli_frontier_table_shows_the_price_of_each_ms(csv_inputs, monkeypatch, capsys):
    d = csv_inputs
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(monkeypatch, capsys, "frontier", str(d / "app.yaml"), "--profiles", str(d / "profiles.csv"),
                             "--offers", str(d / "offers.csv"))
    assert code == 0, err
    assert "per ms saved" in out and "Pareto points" in out
    assert "prices as of" in out and "latency from" in out
