"""Frontier and explanations against brute force over `evaluate`."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from factories import build, one_model_spec, one_model_tables

from placement.evaluate import evaluate
from placement.explain import explain_infeasible, slack_report
from placement.frontier import frontier
from placement.problem import build_problem
from placement.solver import solve
from placement.synthetic import synthetic_instance


def all_evaluations(problem):
    pieces = problem.pieces
    for combo in itertools.product(*(problem.options[p] for p in pieces)):
        yield evaluate(problem, dict(zip(pieces, combo)))


def ok_except(ev, *ignored):
    return all(any(v.startswith(i) for i in ignored) for v in ev.violations)


def brute_pareto(problem):
    evs = [e for e in all_evaluations(problem) if ok_except(e, "SLO")]
    pts = sorted({(round(e.monthly_usd, 2), round(e.latency_ms, 3)) for e in evs})
    front, best_lat = [], float("inf")
    for cost, lat in pts:
        if lat < best_lat - 1e-9:
            front.append((cost, lat))
            best_lat = lat
    return front


def small(seed):
    inst = synthetic_instance(3, 3, 2, seed=seed, max_extra_replicas=1, sites=(5, 50, 300)[seed % 3])
    return build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                         egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)


@pytest.mark.parametrize("seed", range(12))
def test_frontier_equals_brute_force_pareto_set(seed):
    problem = small(seed)
    points = frontier(problem, max_points=100)
    expected = brute_pareto(problem)
    got = [(p.monthly_usd, p.latency_ms) for p in points]
    assert len(got) == len(expected), (got, expected)
    for (gc, gl), (ec, el) in zip(got, expected):
        assert gc == pytest.approx(ec, abs=0.05)
        assert gl == pytest.approx(el, abs=0.02)
    # cheapest first, and each point is faster than the one before
    assert all(a[1] > b[1] for a, b in zip(got, got[1:]))


def test_infeasible_slo_names_the_slo_and_the_fastest_p95():
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(slo_ms=5.0), offers, profiles, io_bytes)
    assert solve(problem).status == "infeasible"
    why = explain_infeasible(problem)
    assert why.binding == ["slo"]
    fastest = min(e.latency_ms for e in all_evaluations(problem) if ok_except(e, "SLO"))
    assert why.fastest_p95_ms == pytest.approx(fastest, abs=0.01)
    assert any("fastest possible p95" in m for m in why.messages)


def test_infeasible_budget_names_the_budget_and_the_cheapest_price():
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(slo_ms=1000.0, budget=50.0), offers, profiles, io_bytes)
    why = explain_infeasible(problem)
    assert why.binding == ["budget"]
    cheapest = min(e.monthly_usd for e in all_evaluations(problem) if ok_except(e, "budget"))
    assert why.cheapest_meeting_slo_usd == pytest.approx(cheapest, abs=0.05)
    assert any("over the budget" in m for m in why.messages)


def test_both_slo_and_budget_can_bind_together():
    offers, profiles, io_bytes = one_model_tables()
    # Fast needs the cloud (expensive at 100 sites and 5 Mbps is too slow anyway): tight both.
    problem = build(one_model_spec(slo_ms=150.0, budget=100.0, uplink=50.0), offers, profiles, io_bytes)
    why = explain_infeasible(problem)
    assert set(why.binding) <= {"slo", "budget"} and why.binding


def test_slack_report_marks_the_slo_binding_when_it_costs_money():
    offers, profiles, io_bytes = one_model_tables()
    # 10 sites: the edge is cheapest but slow; an SLO under its latency forces the cloud.
    spec = one_model_spec(sites=10, uplink=50.0, slo_ms=150.0)
    problem = build(spec, offers, profiles, io_bytes)
    result = solve(problem)
    ev = evaluate(problem, result.assignment)
    slo = next(s for s in slack_report(problem, ev) if s.constraint == "slo")
    assert slo.binding and slo.slack >= 0
    relaxed = build(dict(spec, slo={"latency_ms": 1000.0, "percentile": 95}), offers, profiles, io_bytes)
    ev2 = evaluate(relaxed, solve(relaxed).assignment)
    slo2 = next(s for s in slack_report(relaxed, ev2) if s.constraint == "slo")
    assert not slo2.binding


def test_unplaceable_piece_is_explained():
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(), offers, profiles, io_bytes)
    empty = dataclasses.replace(problem, options={"det": ()}, unplaceable={"det": "no profile for 'det'"})
    assert solve(empty).status == "infeasible"
    assert "det" in explain_infeasible(empty).messages[0]
