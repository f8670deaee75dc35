"""The procurement report: rows as pure functions of a plan, one set of numbers in HTML, CSV,
plan.json and the CLI, a page that renders offline in headless Chromium, a PDF that holds the
total, fleets, infeasible specs and bad inputs. Table-based Workspaces: no TVM profiling."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_workspace import two_model_spec, two_model_tables

from placement import api
from placement import procurement as proc
from placement import procurement_rows as pr
from placement.spec import parse_spec
from profiles import table as pt

CHROMIUM = Path(proc.CHROMIUM)


def workspace(data: dict | None = None) -> api.Workspace:
    offers, profiles, io_bytes = two_model_tables()
    return api.Workspace(parse_spec(data or two_model_spec()), offers_table=offers, profiles_table=profiles,
                         io_bytes=io_bytes)


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory):
    """The demo's shape (screener → classifier, 40 sites) on hand-made tables, reported once."""
    data = two_model_spec()
    data["hardware"]["discount_percent"] = {"aws": 10.0}
    ws = workspace(data)
    report = proc.build_report(ws)
    out = tmp_path_factory.mktemp("report")
    paths = proc.write_report(report, out, pdf=CHROMIUM.exists())
    return ws, report, paths


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


# -- rows ------------------------------------------------------------------------------------

def test_rows_add_up_to_the_plan_to_the_cent(demo_like):
    ws, report, _ = demo_like
    plan = report.plan
    assert plan.feasible and plan.costs
    total = plan.costs.monthly_usd
    egress = sum(i.monthly_usd for i in plan.costs.items if i.kind == "egress")
    bom_total = sum(b["monthly_usd"] + b["amortised_usd"] for b in report.bom) + egress
    assert bom_total == pytest.approx(total, abs=0.01 * len(report.bom) + 0.005)
    month, year, three = report.tco
    assert (month["months"], year["months"], three["months"]) == (1, 12, 36)
    assert month["amortised_usd"] == total and year["amortised_usd"] == plan.costs.annual_usd
    assert three["cash_usd"] == pytest.approx(three["capital_usd"] + three["running_usd"], abs=1e-9)
    assert month["running_usd"] + month["amortised_capital_usd"] == pytest.approx(total, abs=0.005)
    whole = {r["pricing_model"]: r for r in report.purchase_options if r["scope"] == "whole plan"}
    assert whole[plan.costs.pricing_model]["monthly_usd"] == total
    for model, value in plan.costs.by_pricing_model.items():
        if model in whole:
            assert whole[model]["monthly_usd"] == value


def test_purchase_options_price_each_cloud_line_with_the_team_discount_and_the_whole_term(demo_like):
    ws, report, _ = demo_like
    lines = [r for r in report.purchase_options if r["scope"] == "cloud line"]
    assert lines, "the demo-like plan buys a cloud pool"
    offers = ws.team_offers(ws.spec).set_index("offer")
    for r in lines:
        hourly = offers.loc[r["offer"], proc.ot.PRICING_MODELS[r["pricing_model"]]]
        if pd.isna(hourly):
            assert r["monthly_usd"] is None and "no " in r["note"]
            continue
        # the spec's 10 % aws discount is in the team table: list price × 0.9
        listed = ws.offers_table.set_index("offer").loc[r["offer"], proc.ot.PRICING_MODELS[r["pricing_model"]]]
        assert hourly == pytest.approx(listed * 0.9)
        assert r["hourly_usd"] == pytest.approx(hourly, abs=5e-5)
        months = pr.COMMITMENT_MONTHS[r["pricing_model"]]
        assert r["commitment_usd"] == pytest.approx(r["monthly_usd"] * months, abs=0.01)
        assert r["cost_1y_usd"] == pytest.approx(r["monthly_usd"] * max(12, months), abs=0.01)
        assert r["cost_3y_usd"] == pytest.approx(r["monthly_usd"] * 36, abs=0.01)
    reserved_3y = next(r for r in lines if r["pricing_model"] == "reserved-3y")
    assert reserved_3y["monthly_usd"] is None  # the table has no 3-year prices: named, not dropped
    assert {u["offer"] for u in report.unpriced} == {"aws:r0:c1", "aws:r0:g1", "aws:r1:c1"}


def test_sensitivity_re_solves_each_case_and_evaluates_todays_placement(demo_like):
    ws, report, _ = demo_like
    plan = report.plan
    cases = {r["case"]: r for r in report.sensitivity}
    assert list(cases) == ["load ×0.5", "load ×2", "load ×5", "prices −20%", "prices +20%",
                           "uplink halved", "estimates at top of band"]
    # a what-if on the same workspace gives the same numbers as the row
    uplink = ws.spec.network.uplink_mbps / 2
    today = ws.evaluate(pr.today_assignment(plan), api.Overrides(uplink_mbps=uplink)).plan
    assert cases["uplink halved"]["today_monthly_usd"] == pr.usd(today.costs.monthly_usd)
    assert cases["uplink halved"]["today_latency_ms"] == pr.ms(today.latency.p95_ms)
    resolved = ws.plan(api.Overrides(rate_per_site_rps=ws.spec.load.rate_per_site_rps * 2), analyse=False).plan
    assert cases["load ×2"]["monthly_usd"] == pr.usd(resolved.costs.monthly_usd)
    # prices ±20 %: today's placement costs more or less; power and egress do not move
    assert cases["prices +20%"]["today_monthly_usd"] > plan.costs.monthly_usd > cases["prices −20%"]["today_monthly_usd"]
    assert cases["load ×0.5"]["today_holds"] is True
    assert cases["load ×5"]["today_holds"] is False  # what was bought cannot carry five times the load


def test_an_estimate_shows_its_band_and_the_plan_that_holds_at_its_top():
    data = two_model_spec()
    offers, profiles, io_bytes = two_model_tables()
    est = profiles[pt.HARDWARE] == "hw-nano"
    profiles.loc[est, pt.SOURCE] = "estimated"
    profiles.loc[est, pt.ERROR_BAND] = 0.5
    data["hardware"]["edge"] = ["nano"]
    data["hardware"]["cloud"] = []  # the estimated device is the only place to run: the plan uses it
    ws = api.Workspace(parse_spec(data), offers_table=offers, profiles_table=profiles, io_bytes=io_bytes)
    report = proc.build_report(ws, frontier_points=4)
    risky = [r for r in report.risk if r["estimated"]]
    assert {r["piece"] for r in risky} == {"screener", "classifier"}, report.risk
    assert all(r["compute_top_of_band_ms"] == pr.ms(r["compute_ms"] * 1.5) for r in risky) or all(
        abs(r["compute_top_of_band_ms"] - r["compute_ms"] * 1.5) <= 0.11 for r in risky)
    upper = ws.plan(api.Overrides(estimated_latency="upper-band"), analyse=False).plan
    assert report.upper_band["monthly_usd"] == pr.usd(upper.costs.monthly_usd)


# -- one set of numbers ----------------------------------------------------------------------

def html_cells(html: str, column: str) -> list[str]:
    return re.findall(rf'data-col="{column}">([^<]*)<', html)


def test_html_and_csvs_show_the_same_numbers(demo_like):
    _, report, paths = demo_like
    html = paths["report.html"].read_text(encoding="utf-8")
    total = report.plan.costs.monthly_usd
    assert re.search(r'id="monthly-total"[^>]*>\$([\d,.]+)<', html).group(1) == f"{total:,.2f}"
    costs = read_csv(paths["costs.csv"])
    assert next(r for r in costs if r["section"] == "monthly total")["monthly_usd"] == f"{total:.2f}"
    items = [r["monthly_usd"] for r in costs if r["section"] == "monthly item"]
    bom = read_csv(paths["bom.csv"])
    shown = html_cells(html, "monthly_usd")
    for value in items + [b["monthly_usd"] for b in bom if b["tier"] == "cloud"]:
        assert f"${float(value):,.2f}" in shown
    sens = read_csv(paths["sensitivity.csv"])
    assert [r["case"] for r in sens] == [r["case"] for r in report.sensitivity]
    for row in sens:
        if row["monthly_usd"]:
            assert f"${float(row['monthly_usd']):,.2f}" in shown
    for t, row in zip(report.tco, (r for r in costs if r["section"] == "tco")):
        assert row["amortised_usd"] == f"{t['amortised_usd']:.2f}"
        assert f"${t['amortised_usd']:,.2f}" in html_cells(html, "amortised_usd")
    assert list(bom[0]) == proc.BOM_COLUMNS and list(costs[0]) == proc.COST_COLUMNS
    assert list(sens[0]) == proc.SENSITIVITY_COLUMNS


SPEC = """name: tiny-report
models:
  - {{name: alpha, onnx: {onnx}, inputs: {{x: [1, 64]}}}}
dataflow:
  - {{from: source, to: alpha, bytes: 256}}
  - {{from: alpha, to: sink}}
load: {{sites: 20, rate_per_site_rps: 2.0}}
slo: {{latency_ms: {slo}, percentile: 95}}
monthly_budget_usd: 1000
hardware:
  edge: [rpi5-8gb]
  cloud: [{{provider: aws, regions: [us-east-1], instance_types: [c7a.large, c7a.xlarge]}}]
network: {{uplink_mbps: 20, downlink_mbps: 100, rtt_ms: {{us-east-1: 30}}}}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A spec file of one tiny real ONNX model with a profiles CSV (the edge device too slow for
    the SLO, so the plan buys a cloud pool): the CLI runs without TVM."""
    from factories import profile_row
    from test_tuning import two_kernel_model

    root = tmp_path_factory.mktemp("tiny")
    two_kernel_model(root / "tiny.onnx")
    (root / "app.yaml").write_text(SPEC.format(onnx="tiny.onnx", slo=100))
    (root / "other.yaml").write_text(SPEC.format(onnx="tiny.onnx", slo=120))
    pd.DataFrame([profile_row("alpha", "arm-cortex-a76-4c", 120.0, 150.0),
                  profile_row("alpha", "x86-zen4-2c", 4.0, 5.0),
                  profile_row("alpha", "x86-zen4-4c", 3.0, 4.0)],
                 columns=pt.PROFILE_COLUMNS).to_csv(root / "profiles.csv", index=False)
    return root


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from placement.cli import main; main()", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PLACEMENT_DEBUG": ""})


def test_cli_html_csv_and_plan_json_agree_to_the_cent_and_the_tenth_of_a_millisecond(tiny):
    made = cli("plan", "app.yaml", "--profiles", "profiles.csv", "-o", "plan.json", "--json", cwd=tiny)
    assert made.returncode == 0, made.stderr
    ran = cli("report", "app.yaml", "--profiles", "profiles.csv", "--plan", "plan.json", "-o", "out", "--no-pdf",
              cwd=tiny)
    assert ran.returncode == 0, ran.stderr
    plan = json.loads((tiny / "plan.json").read_text())
    total, p95 = plan["costs"]["monthly_usd"], plan["latency"]["p95_ms"]
    assert any(p["tier"] == "cloud" for p in plan["placements"])
    html = (tiny / "out" / "report.html").read_text(encoding="utf-8")
    first = ran.stdout.splitlines()[0]
    assert f"${total:,.2f}/month" in first and f"p95 {p95:.1f} ms" in first
    assert re.search(r'id="monthly-total"[^>]*>\$([\d,.]+)<', html).group(1) == f"{total:,.2f}"
    assert re.search(r'id="p95"[^>]*>([\d.]+) ms<', html).group(1) == f"{p95:.1f}"
    costs = read_csv(tiny / "out" / "costs.csv")
    assert next(r for r in costs if r["section"] == "monthly total")["monthly_usd"] == f"{total:.2f}"
    bom = read_csv(tiny / "out" / "bom.csv")
    cloud = [b for b in bom if b["tier"] == "cloud"]
    pools = {p["option"]: p for p in plan["placements"] if p["tier"] == "cloud"}
    assert [b["monthly_usd"] for b in cloud] == [f"{p['monthly_usd']:.2f}" for p in pools.values()]
    assert [int(b["quantity"]) for b in cloud] == [p["replicas"] for p in pools.values()]
    # the snapshot has no reserved price for c7a: the report says so instead of dropping it
    options = [r for r in costs if r["section"].startswith("purchase option") and r["pricing_model"] == "reserved-1y"]
    assert options and all(r["monthly_usd"] == "" and "no reserved-1y price" in r["note"] for r in options)
    assert "no reserved-1y price" in html
    assert not (tiny / "out" / "report.pdf").exists()


def test_a_plan_from_another_spec_and_a_missing_output_parent_get_one_clear_line(tiny):
    made = cli("plan", "other.yaml", "--profiles", "profiles.csv", "-o", "other-plan.json", "--json", cwd=tiny)
    assert made.returncode == 0, made.stderr
    wrong = cli("report", "app.yaml", "--profiles", "profiles.csv", "--plan", "other-plan.json", "-o", "out2",
                "--no-pdf", cwd=tiny)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().count("\n") == 0 and "another spec" in wrong.stderr, wrong.stderr
    missing = cli("report", "app.yaml", "--profiles", "profiles.csv", "-o", "no/such/dir", cwd=tiny)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "parent folder" in missing.stderr, missing.stderr
    garbage = tiny / "garbage.json"
    garbage.write_text("{not json")
    bad = cli("report", "app.yaml", "--profiles", "profiles.csv", "--plan", garbage, "-o", "out3", cwd=tiny)
    assert bad.returncode == 2 and "not a plan.json" in bad.stderr and bad.stderr.strip().count("\n") == 0


# -- fleets and infeasible specs ---------------------------------------------------------------

def test_a_mixed_fleet_report_lists_its_segments(tmp_path):
    data = copy.deepcopy(two_model_spec())
    data["hardware"]["edge"] = []
    data["fleet"] = [{"name": "old-stores", "share": 0.7, "device": "pi", "owned": True},
                     {"name": "new-stores", "share": 0.3, "device": "nano"}]
    report = proc.build_report(workspace(data), frontier_points=4)
    assert [s["segment"] for s in report.segments] == ["old-stores", "new-stores"]
    edge = [b for b in report.bom if b["tier"] == "edge"]
    assert {b["segment"] for b in edge} <= {"old-stores", "new-stores"} and edge
    for b in edge:
        if b["owned"]:
            assert b["capital_usd"] == 0.0 and b["purchase_option"] == "owned"
    paths = proc.write_report(report, tmp_path / "fleet", pdf=False)
    html = paths["report.html"].read_text(encoding="utf-8")
    assert "Fleet segments" in html and "old-stores" in html and "new-stores" in html
    assert {r["segment"] for r in read_csv(paths["bom.csv"]) if r["tier"] == "edge"} == {b["segment"] for b in edge}


def test_an_infeasible_spec_gets_a_report_that_explains_why(tmp_path):
    data = two_model_spec()
    data["slo"]["latency_ms"] = 3
    report = proc.build_report(workspace(data))
    assert report.plan.status == "infeasible" and not report.bom and not report.tco
    paths = proc.write_report(report, tmp_path / "none", pdf=False)
    html = paths["report.html"].read_text(encoding="utf-8")
    assert 'id="no-plan"' in html and "Why there is no plan" in html and "Bill of materials" not in html
    for message in report.plan.explanation.messages:
        assert message.replace("'", "&#39;").replace(">", "&gt;").replace("<", "&lt;")[:40] in html
    assert read_csv(paths["bom.csv"]) == [] and paths["bom.csv"].read_text().startswith("tier,item,")
    assert len(read_csv(paths["sensitivity.csv"])) == 7  # what would have to move is still shown


# -- the page in a browser, and the PDF --------------------------------------------------------

@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_the_report_renders_offline_in_chromium_with_every_chart_drawn(demo_like):
    from playwright.sync_api import sync_playwright

    _, report, paths = demo_like
    html = paths["report.html"]
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=proc.CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.resolve().as_uri(), wait_until="load")
            charts = page.eval_on_selector_all("svg.chart", """els => els.map(e => {
                const box = e.getBoundingClientRect();
                const marks = [...e.querySelectorAll('.bar, .point')].filter(m => {
                    const b = m.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
                return {name: e.dataset.chart, width: box.width, height: box.height, marks: marks.length};
            })""")
        finally:
            browser.close()
    assert errors == []
    assert requests == [html.resolve().as_uri()]  # nothing fetched beyond the file itself
    assert {c["name"] for c in charts} == {"cost-by-item", "latency-per-path", "frontier"}
    for c in charts:
        assert c["width"] > 100 and c["height"] > 50 and c["marks"] >= 1, c
    frontier = next(c for c in charts if c["name"] == "frontier")
    assert frontier["marks"] == len(report.frontier)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_the_pdf_has_pages_and_holds_the_monthly_total(demo_like):
    from pypdf import PdfReader

    _, report, paths = demo_like
    reader = PdfReader(str(paths["report.pdf"]))
    assert len(reader.pages) >= 2
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert f"${report.plan.costs.monthly_usd:,.2f}" in text
    assert "Bill of materials" in text and "Sensitivity" in text
