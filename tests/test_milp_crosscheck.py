"""CP-SAT's optimum equals an independent HiGHS MILP on medium instances (too big to enumerate)."""

import pytest
from milp_reference import milp_min_cost

from placement.evaluate import evaluate
from placement.problem import build_problem
from placement.solver import solve
from placement.synthetic import synthetic_instance


def assert_cp_sat_matches_milp(problem):
    result = solve(problem, time_limit_s=60)
    expected = milp_min_cost(problem)
    if expected is None:
        assert result.status == "infeasible"
        return
    assert result.status == "optimal"
    ev = evaluate(problem, result.assignment)
    assert ev.feasible, ev.violations
    assert ev.monthly_usd == pytest.approx(expected, abs=0.05 + 1e-6 * expected)


@pytest.mark.parametrize("seed", range(8))
def test_cp_sat_matches_highs_milp(seed):
    inst = synthetic_instance(7, 12, 3, seed=300 + seed, regions=2, sites=(10, 60, 250, 40)[seed % 4])
    problem = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                            egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    assert_cp_sat_matches_milp(problem)


@pytest.mark.parametrize("seed", range(6))
def test_cp_sat_matches_highs_milp_on_mixed_fleets(seed):
    inst = synthetic_instance(4, 8, 3, seed=400 + seed, regions=2, sites=30, fleet_segments=3,
                              max_extra_replicas=1, slo_ms=(180.0, 260.0, 400.0)[seed % 3])
    spec = inst.spec
    if seed % 2:  # the SLO on two of the three segments' sites only
        spec = spec.model_copy(update={"slo": spec.slo.model_copy(update={"min_site_share": 0.6})})
    problem = build_problem(spec, inst.profiles, inst.offers, inst.io_bytes,
                            egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    assert problem.fleet and len(problem.pieces) == 12
    assert_cp_sat_matches_milp(problem)
