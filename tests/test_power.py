"""Edge power by use (issue 15 item 3): idle power around the clock plus the busy share of
(busy - idle), computed by hand here, charged the same by the solver and the checker."""

from __future__ import annotations

import pandas as pd
import pytest
from factories import build, offer_row, one_model_spec, one_model_tables, profile_row

from placement.evaluate import evaluate
from placement.solver import solve
from pricing import table as ot
from pricing.overrides import apply_overrides
from profiles import table as pt

HOURS = 730.0
KWH_USD = 0.15


def edge_only(idle_w=2.0, *, busy_w=6.0, power="by-use", rate=1.0, sites=100):
    """One model on a 6 W device (p50 100 ms, so `rate` calls/s keep it rate x 10 % busy)."""
    offers, profiles, io_bytes = one_model_tables()
    offers = offers.copy()
    offers.loc[offers[ot.OFFER] == "edge:pi", [ot.POWER_W, ot.IDLE_POWER_W]] = [busy_w, idle_w]
    spec = one_model_spec(sites=sites, rate=rate, slo_ms=1000.0)
    spec["edge"]["power"] = power
    spec["hardware"]["cloud"] = []
    problem = build(spec, offers, profiles, io_bytes)
    [option] = [o for o in problem.options["det"] if o.tier == "edge"]
    return problem, option


def power_line(problem, option):
    ev = evaluate(problem, {"det": option.id})
    [line] = [i for i in ev.cost_items if i.kind == "edge-power"]
    return ev, line


def test_power_follows_utilisation():
    problem, option = edge_only(rate=2.0)
    assert option.utilisation == pytest.approx(0.2)  # 2 calls/s x 100 ms
    watts = 2.0 + (6.0 - 2.0) * 0.2  # 2.8 W on average
    per_site = watts / 1000 * HOURS * KWH_USD
    ev, line = power_line(problem, option)
    assert line.unit_usd == pytest.approx(per_site)
    assert line.monthly_usd == pytest.approx(per_site * 100)
    assert "2 W idle + 4 W x 20.0% busy = 2.80 W average" in line.source
    # the option carries the share above idle, so the solver charges exactly what the checker does
    assert option.power_monthly_usd == pytest.approx(4.0 * 0.2 / 1000 * HOURS * KWH_USD * 100)
    result = solve(problem)
    assert result.assignment == {"det": option.id}
    assert result.objective_value == pytest.approx(ev.monthly_usd, abs=0.01)


def test_twice_the_load_adds_only_the_busy_share():
    low, o_low = edge_only(rate=1.0)
    high, o_high = edge_only(rate=3.0)
    _, a = power_line(low, o_low)
    _, b = power_line(high, o_high)
    # 0.1 -> 0.3 busy: 4 W x 0.2 more at 100 sites
    assert b.monthly_usd - a.monthly_usd == pytest.approx(4.0 * 0.2 / 1000 * HOURS * KWH_USD * 100)


def test_full_load_charges_the_busy_figure_around_the_clock():
    problem, option = edge_only(power="full-load")
    assert option.power_monthly_usd == 0.0
    _, line = power_line(problem, option)
    assert line.monthly_usd == pytest.approx(6.0 / 1000 * HOURS * KWH_USD * 100)
    assert "full-load" in line.source


def test_a_device_with_no_idle_figure_is_charged_busy_and_says_so():
    problem, option = edge_only(idle_w=None)
    _, line = power_line(problem, option)
    assert line.monthly_usd == pytest.approx(6.0 / 1000 * HOURS * KWH_USD * 100)
    assert "no published idle figure" in line.source


def test_two_pieces_on_one_device_add_their_busy_shares():
    offers, _, _ = one_model_tables()
    offers = offers.copy()
    offers.loc[offers[ot.OFFER] == "edge:pi", [ot.POWER_W, ot.IDLE_POWER_W]] = [6.0, 2.0]
    profiles = pd.DataFrame([profile_row("det", "hw-pi", 100.0, 120.0), profile_row("cls", "hw-pi", 50.0, 60.0)],
                            columns=pt.PROFILE_COLUMNS)
    spec = one_model_spec(sites=10, rate=1.0, slo_ms=1000.0)
    spec["models"].append({"name": "cls", "onnx": "zoo:resnet18"})
    spec["dataflow"] = [{"from": "source", "to": "det"}, {"from": "det", "to": "cls"}, {"from": "cls", "to": "sink"}]
    spec["hardware"]["cloud"] = []
    problem = build(spec, offers, profiles, {"det": (1000, 100), "cls": (100, 10)})
    choice = {p: next(o.id for o in problem.options[p] if o.tier == "edge") for p in ("det", "cls")}
    ev = evaluate(problem, choice)
    [line] = [i for i in ev.cost_items if i.kind == "edge-power"]
    watts = 2.0 + 4.0 * (0.1 + 0.05)
    assert line.monthly_usd == pytest.approx(watts / 1000 * HOURS * KWH_USD * 10)
    assert solve(problem).objective_value == pytest.approx(ev.monthly_usd, abs=0.01)


def test_the_bundled_pi_has_a_cited_idle_figure():
    from pricing.edge import edge_offers

    pi = edge_offers().set_index(ot.OFFER).loc["edge:rpi5-8gb"]
    assert 0 < pi[ot.IDLE_POWER_W] < pi[ot.POWER_W]
    assert "idle power: " in pi[ot.PRICE_SOURCE]


def test_an_offer_table_without_idle_power_is_read_and_one_with_idle_above_busy_is_refused():
    offers, _, _ = one_model_tables()
    legacy = offers.drop(columns=[ot.IDLE_POWER_W])
    assert ot.validate_offer_table(legacy)[ot.IDLE_POWER_W].isna().all()
    wrong = offers.copy()
    wrong.loc[0, ot.IDLE_POWER_W] = 9.0
    with pytest.raises(ot.OfferTableError, match="row 1: idle_power_w must not exceed power_w"):
        ot.validate_offer_table(wrong, origin="offers.csv")


def test_idle_power_can_be_overridden(tmp_path):
    offers = ot.validate_offer_table(pd.DataFrame([
        offer_row("edge:pi", "edge", "pi", "hw-pi", unit=120.0, power=6.0)], columns=ot.OFFER_COLUMNS))
    csv = tmp_path / "ours.csv"
    csv.write_text("offer,idle_power_w\nedge:pi,1.5\n")
    out = apply_overrides(offers, csv)
    assert out.loc[0, ot.IDLE_POWER_W] == 1.5 and out.loc[0, ot.PRICE_SOURCE] == f"override: {csv}"
