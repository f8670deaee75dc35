"""The frontier spans the whole trade-off: with any `--points` it holds the cheapest feasible
plan and (from two points on) the fastest one, its points spread over the latency range,
none dominated, never more than asked for."""

from __future__ import annotations

import pandas as pd
import pytest
from factories import build, offer_row, one_model_spec, one_model_tables, profile_row
from test_frontier_explain import brute_pareto, small

from placement.frontier import frontier
from pricing import table as ot
from profiles import table as pt


def check_range(problem, points, max_points):
    expected = brute_pareto(problem)
    got = [(p.monthly_usd, p.latency_ms) for p in points]
    assert 1 <= len(got) <= max_points
    # the cheapest feasible plan...
    assert got[0][0] == pytest.approx(expected[0][0], abs=0.05)
    assert got[0][1] == pytest.approx(expected[0][1], abs=0.02)
    if max_points >= 2 and len(expected) >= 2:
        # ...and the fastest, whatever the count
        assert got[-1][1] == pytest.approx(expected[-1][1], abs=0.02)
        assert got[-1][0] == pytest.approx(expected[-1][0], abs=0.05)
    # cheapest first, each faster than the one before: nothing dominated
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(got, got[1:]))
    return got, expected


def fan_out():
    """Four small models: a feature extractor feeding an embedding model feeding two heads,
    on a Pi at each site, or AWS / Azure."""
    spec = one_model_spec(sites=400, rate=12.5, slo_ms=500.0, edge=("pi",))
    spec["models"] = [{"name": m, "onnx": "zoo:resnet18"} for m in ("feat", "emb", "h1", "h2")]
    spec["dataflow"] = [{"from": "source", "to": "feat"}, {"from": "feat", "to": "emb"},
                        {"from": "emb", "to": "h1"}, {"from": "emb", "to": "h2"},
                        {"from": "h1", "to": "sink"}, {"from": "h2", "to": "sink"}]
    spec["hardware"]["cloud"] = [{"provider": "aws", "regions": ["r0"]},
                                 {"provider": "azure", "regions": ["r1"]}]
    spec["network"]["rtt_ms"] = {"r0": 20.0, "r1": 25.0}
    offers = pd.DataFrame([
        offer_row("edge:pi", "edge", "pi", "hw-pi", unit=120.0, power=6.0, memory_gib=4.0),
        offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.1),
        offer_row("azure:r1:d1", "cloud", "d1", "hw-d1", provider="azure", region="r1", hourly=0.09),
    ], columns=ot.OFFER_COLUMNS)
    ms = {"feat": 0.5, "emb": 0.3, "h1": 0.02, "h2": 0.05}
    profiles = pd.DataFrame(
        [profile_row(m, "hw-pi", 4 * v, 5 * v) for m, v in ms.items()]
        + [profile_row(m, hw, v, 1.2 * v) for m, v in ms.items() for hw in ("hw-c1", "hw-d1")],
        columns=pt.PROFILE_COLUMNS)
    io = {"feat": (4_000, 1_024), "emb": (1_024, 384), "h1": (384, 16), "h2": (384, 16)}
    return build(spec, offers, profiles, io)


@pytest.mark.parametrize("max_points", [1, 2, 3, 20])
def test_demo_like_frontier_holds_both_ends(max_points):
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(sites=100, uplink=50.0), offers, profiles, io_bytes)
    got, expected = check_range(problem, frontier(problem, max_points=max_points), max_points)
    if max_points >= len(expected):
        assert len(got) == len(expected)


@pytest.mark.parametrize("max_points", [2, 3, 5])
def test_fan_out_frontier_holds_both_ends(max_points):
    problem = fan_out()
    got, expected = check_range(problem, frontier(problem, max_points=max_points), max_points)
    assert len(expected) > max_points or len(got) == len(expected)


@pytest.mark.parametrize("seed", range(6))
def test_few_points_are_spread_over_the_range(seed):
    problem = small(seed)
    got, expected = check_range(problem, frontier(problem, max_points=3), 3)
    if len(expected) >= 3:
        # a third point lies strictly inside the latency range
        assert len(got) == 3 and expected[-1][1] < got[1][1] < expected[0][1]
