"""Co-located pools (issue 15): several pieces in one cloud pool of an instance type in a region,
sized for their loads together; hand-checked, against brute force, HiGHS and the checker."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from factories import build, offer_row, profile_row
from milp_reference import milp_min_cost
from test_solver import brute_force

from placement.evaluate import evaluate, resolve_assignment
from placement.problem import build_problem
from placement.solver import solve
from placement.synthetic import synthetic_instance
from pricing import table as ot
from profiles import table as pt

PIPELINE = ["feat", "emb", "cls_a", "cls_b"]  # feat -> emb -> (cls_a, cls_b): the fan-out


def pipeline_spec(*, slo_ms=250.0, colocate=True, models=None, dataflow=None, sites=100, rate=1.0, extra=1):
    models = models or [{"name": n} for n in PIPELINE]
    dataflow = dataflow or [("source", "feat"), ("feat", "emb"), ("emb", "cls_a"), ("emb", "cls_b"),
                            ("cls_a", "sink"), ("cls_b", "sink")]
    return {
        "name": "fan-out",
        "models": [{"onnx": "zoo:resnet18", **m} for m in models],
        "dataflow": [{"from": a, "to": b} for a, b in dataflow],
        "load": {"sites": sites, "rate_per_site_rps": rate},
        "slo": {"latency_ms": slo_ms, "percentile": 95},
        "monthly_budget_usd": 1e6,
        "hardware": {"edge": [], "cloud": [{"provider": "aws", "regions": ["r0"]}]},
        "network": {"uplink_mbps": 50.0, "downlink_mbps": 100.0, "rtt_ms": {"r0": 20.0}},
        "solver": {"max_extra_replicas": extra, "colocate": colocate},
    }


def pipeline_tables(latency_ms: dict, memory_mb=100.0, memory_gib=16.0):
    offers = pd.DataFrame([offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.1, spot=0.03,
                                     memory_gib=memory_gib)], columns=ot.OFFER_COLUMNS)
    profiles = pd.DataFrame([profile_row(n, "hw-c1", ms, ms, memory_mb=memory_mb) for n, ms in latency_ms.items()],
                            columns=pt.PROFILE_COLUMNS)
    io_bytes = {n: (4_000, 1_000) for n in latency_ms}
    return offers, profiles, io_bytes


def four_small(**kw):
    offers, profiles, io_bytes = pipeline_tables({n: 1.0 for n in PIPELINE})
    return build(pipeline_spec(**kw), offers, profiles, io_bytes)


def test_four_small_pieces_share_one_pool_when_that_is_cheaper():
    separate, shared = four_small(colocate=False), four_small()
    assert not any(o.pool_pieces for opts in separate.options.values() for o in opts)
    apart = evaluate(separate, solve(separate).assignment)
    # 100 sites x 1 request/s x 1 ms = 0.1 replica of load per piece: one replica each, four pools
    assert [o.replicas for o in apart.assignment.values()] == [1, 1, 1, 1]
    assert [i.monthly_usd for i in apart.cost_items if i.kind == "compute"] == [73.0] * 4

    result = solve(shared)
    together = evaluate(shared, result.assignment)
    assert together.feasible, together.violations
    chosen = together.assignment
    assert {o.pool for o in chosen.values()} == {"aws:r0:c1/r1/pool[feat+emb+cls_a+cls_b]"}
    pool = chosen["feat"]
    assert pool.pool_pieces == tuple(PIPELINE) and pool.replicas == 1
    # the loads add up: 4 x 0.1 = 0.4 of one replica; the pool is paid once, 1 x $0.10 x 730 h
    assert pool.utilisation == pytest.approx(0.4)
    compute = [i for i in together.cost_items if i.kind == "compute"]
    assert [(i.item, i.quantity, i.monthly_usd) for i in compute] == [
        ("feat+emb+cls_a+cls_b on aws:r0:c1 (one pool)", 1, 73.0)]
    # the same bytes leave the region either way: sharing saves three replicas exactly
    assert apart.monthly_usd - together.monthly_usd == pytest.approx(3 * 73.0)
    # The wait by hand: M/D/1-like (p50 = p95: cs² = 0), rho 0.4. cls_a and cls_b get emb's output
    # at one instant: their jobs come in pairs (gaps' ca² 2 x (1 + 1) - 1 = 3), feat's and emb's
    # alone (1): merged ca² = (100 x 1 + 100 x 1 + 200 x 3) / 400 = 2. Allen-Cunneen, c = 1:
    # (ca² + cs²) / 2 x S / (1 - rho) x ln(rho / 5 %) = 1 x 1 ms / 0.6 x ln 8.
    hand = math.log(8.0) / 0.6
    assert [o.wait_ms for o in chosen.values()] == pytest.approx([hand] * 4)
    # ...above the independent-arrivals figure plus a sibling ahead (0.5 / 0.6 x ln 8 + 1 ms)
    assert hand > 0.5 * math.log(8.0) / 0.6 + 1.0
    # the checker recomputes every member's wait from the pool's merged load
    assert together.pool_wait_ms == pytest.approx({p: hand for p in PIPELINE})
    # brute force over evaluate and the HiGHS reference agree with CP-SAT
    assert brute_force(shared)[0] == pytest.approx(together.monthly_usd, abs=0.01)
    assert milp_min_cost(shared) == pytest.approx(together.monthly_usd, abs=0.05)
    assert result.objective_value == pytest.approx(together.monthly_usd, abs=0.01)


def two_stage(slo_ms: float, **kw):
    """fast (1 ms) -> slow (20 ms), 30 requests/s: 0.03 and 0.6 replicas of load, one replica
    each apart, or one replica together (0.63) where fast waits behind slow's jobs (no extra
    replicas, so a larger shared pool is not on offer)."""
    offers, profiles, io_bytes = pipeline_tables({"fast": 1.0, "slow": 20.0})
    spec = pipeline_spec(slo_ms=slo_ms, models=[{"name": "fast"}, {"name": "slow"}], sites=30,
                         dataflow=[("source", "fast"), ("fast", "slow"), ("slow", "sink")], extra=0, **kw)
    return build(spec, offers, profiles, io_bytes)


def test_separate_pools_stay_separate_when_sharing_would_miss_the_slo():
    loose, tight = two_stage(250.0), two_stage(130.0)
    shared = next(o for o in loose.options["fast"] if o.pool_pieces)
    alone = {p: min((o for o in loose.options[p] if not o.pool_pieces), key=lambda o: o.replicas)
             for p in ("fast", "slow")}
    # together: one replica ($73 instead of $146), but fast's 1 ms jobs queue behind slow's 20 ms
    # ones: merged mean 10.5 ms, cs² 0.82, rho 0.63 -> a 65 ms wait for both
    assert shared.replicas == 1 and shared.monthly_usd == pytest.approx(73.0)
    assert shared.wait_ms == pytest.approx(0.909 * 10.5 / 0.37 * math.log(0.63 / 0.05), rel=0.01)
    assert alone["fast"].wait_ms == 0.0 and alone["slow"].wait_ms < shared.wait_ms
    cheap = evaluate(loose, solve(loose).assignment)
    assert {o.pool for o in cheap.assignment.values()} == {shared.pool}
    assert brute_force(loose)[0] == pytest.approx(cheap.monthly_usd, abs=0.01)
    # a tight SLO keeps them apart, and so does asking for the fastest plan
    result = solve(tight)
    apart = evaluate(tight, result.assignment)
    assert apart.feasible and not any(o.pool_pieces for o in apart.assignment.values())
    assert apart.monthly_usd == pytest.approx(cheap.monthly_usd + 73.0, abs=0.01)
    assert brute_force(tight)[0] == pytest.approx(apart.monthly_usd, abs=0.01)
    forced = evaluate(tight, {"fast": shared, "slow": next(o for o in tight.options["slow"] if o.pool == shared.pool)})
    assert any(v.startswith("SLO") for v in forced.violations)
    fastest = evaluate(loose, solve(loose, objective="latency").assignment)
    assert not any(o.pool_pieces for o in fastest.assignment.values())


def test_the_checker_recomputes_a_pool_and_refuses_a_broken_one():
    problem = four_small()
    pool = {p: next(o for o in problem.options[p] if o.pool == "aws:r0:c1/r1/pool[feat+emb+cls_a+cls_b]")
            for p in PIPELINE}
    assert evaluate(problem, pool).feasible
    # one piece in a pool of its own while the shared pool is paid for it too
    own = next(o for o in problem.options["cls_b"] if not o.pool_pieces)
    broken = evaluate(problem, {**pool, "cls_b": own})
    assert any(v.startswith("pool:") and "cls_b runs elsewhere" in v for v in broken.violations)
    # an option that understates its wait, or whose pieces do not fit the instance's memory
    lying = dataclasses.replace(pool["emb"], wait_ms=0.5)
    assert any(v.startswith("wait: emb") for v in evaluate(problem, {**pool, "emb": lying}).violations)
    small = dataclasses.replace(pool["emb"], pool_memory_mb=300.0)  # 4 x 100 MB
    assert any(v.startswith("cloud memory") for v in evaluate(problem, {**pool, "emb": small}).violations)
    # pieces of 6 GB each: at most two fit a 16 GiB instance together
    offers, profiles, io_bytes = pipeline_tables({n: 1.0 for n in PIPELINE}, memory_mb=6_000.0)
    big = build(pipeline_spec(), offers, profiles, io_bytes)
    sizes = {len(o.pool_pieces) for opts in big.options.values() for o in opts if o.pool_pieces}
    assert sizes == {2}


def test_what_if_names_a_shared_pool_and_a_plan_round_trips():
    from placement.plan import make_plan
    from placement.procurement_rows import today_assignment

    problem = four_small()
    shared = resolve_assignment(problem, {p: "aws:r0:c1/shared" for p in PIPELINE})
    assert {o.pool for o in shared.values()} == {"aws:r0:c1/r1/pool[feat+emb+cls_a+cls_b]"}
    two = resolve_assignment(problem, {"feat": "aws:r0:c1/shared", "emb": "aws:r0:c1/shared",
                                       "cls_a": "aws:r0:c1", "cls_b": "aws:r0:c1"})
    assert two["feat"].pool_pieces == ("feat", "emb") and not two["cls_a"].pool_pieces
    result = solve(problem)
    plan = make_plan(problem, result, evaluate(problem, result.assignment), tvm_version=None)
    again = resolve_assignment(problem, today_assignment(plan))
    assert {p: o.id for p, o in again.items()} == result.assignment


def test_plan_reports_and_bundle_layout_show_one_pool():
    from placement.export.layout import plan_layout
    from placement.plan import make_plan
    from placement.procurement_rows import bom_rows as procurement_bom
    from placement.procurement_rows import placement_summary
    from placement.report import markdown_summary
    from placement.rows import bom_rows, plan_rows

    problem = four_small()
    result = solve(problem)
    plan = make_plan(problem, result, evaluate(problem, result.assignment), tvm_version=None)
    assert plan.schema_version == "1.3"
    assert {p.pool for p in plan.placements} == {"aws:r0:c1/r1/pool[feat+emb+cls_a+cls_b]"}
    assert all(p.pool_pieces == PIPELINE for p in plan.placements)
    rows = plan_rows(plan)
    assert rows[0]["monthly_usd"] == 73.0 and rows[0]["replicas"] == "1 (pool of 4)"
    assert [r["cost_note"] for r in rows[1:]] == ["same pool as feat"] * 3
    bom = bom_rows(plan)
    assert [(b["serves"], b["quantity"], b["monthly_usd"]) for b in bom] == [
        ("one pool: feat + emb + cls_a + cls_b", 1, 73.0)]
    assert [(b["serves"], b["quantity"]) for b in procurement_bom(plan, 36)] == [
        ("one pool: feat + emb + cls_a + cls_b", 1)]
    assert placement_summary(plan) == "feat, emb, cls_a and cls_b on aws r0 c1 ×1 (one pool)"
    assert "| feat+emb+cls_a+cls_b on aws:r0:c1 (one pool) |" in markdown_summary(plan)
    layout = plan_layout(plan)
    assert [(p.name, p.replicas, [u.piece for u in p.units]) for p in layout.pools] == [
        ("feat-emb-cls-a-cls-b-c1-r0", 1, PIPELINE)]


def test_no_colocation_in_mixed_fleets_nor_for_split_tails():
    inst = synthetic_instance(3, 3, 2, seed=1, sites=30, fleet_segments=2)
    fleet = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                          egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    assert not any(o.pool_pieces for opts in fleet.options.values() for o in opts)
    from test_solver import split_instance

    split = split_instance()
    assert not any(o.pool_pieces and o.cut for opts in split.options.values() for o in opts)


def light(seed: int, prune: bool = True):
    """Three pieces, three cloud offers in one or two regions, no edge: from a few sites (all
    three in one replica) to enough for pools of two plus a piece alone."""
    inst = synthetic_instance(3, 3, 0, seed=900 + seed, sites=(3, 20, 60)[seed % 3], max_extra_replicas=1,
                              regions=1 + seed % 2, slo_ms=(400.0, 250.0)[seed % 2])
    return build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes, prune=prune,
                         egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)


@pytest.mark.parametrize("seed", range(10))
def test_shared_pools_optimum_equals_brute_force(seed):
    """Neither pruning the pools nor the solver loses the optimum that brute force over every
    option (pools unpruned) finds."""
    pruned, full = light(seed), light(seed, prune=False)
    result = solve(pruned)
    expected = brute_force(full)
    if expected is None:
        assert result.status == "infeasible"
        return
    got = evaluate(pruned, result.assignment)
    assert got.feasible, got.violations
    assert got.monthly_usd == pytest.approx(expected[0], abs=0.05)


def test_light_instances_choose_shared_pools_of_every_size():
    chosen = set()
    for seed in range(10):
        problem = light(seed)
        result = solve(problem)
        for piece, option_id in (result.assignment or {}).items():
            chosen.add(len(next(o for o in problem.options[piece] if o.id == option_id).pool_pieces))
    assert chosen == {0, 2, 3}  # alone, in a pool of two, all three in one


def test_verify_measures_a_shared_pool_the_way_it_is_predicted():
    """A shared pool's utilisation is predicted for the pool; verify measures it over all its pieces."""
    from placement.plan import make_plan
    from placement.verify.report import compare
    from placement.verify.run import RunRecord, StageRecord
    from placement.verify.topology import plan_topology

    problem = four_small()
    result = solve(problem)
    plan = make_plan(problem, result, evaluate(problem, result.assignment), tvm_version=None)
    topology = plan_topology(plan)
    [pool] = [g for g in topology.groups.values() if g.kind == "pool"]
    assert sorted(pool.stages) == sorted(PIPELINE)
    record = RunRecord(span_s=10.0, stages={s: StageRecord() for s in topology.stages})
    for i, stage in enumerate(PIPELINE):  # 1, 2, 3 and 4 s busy of 10 s on one replica
        record.stages[stage].busy_ms = 1000.0 * (i + 1)
    rows = {s["stage"]: s for s in compare(plan, topology, record, ws=None)["stages"]}
    for stage in PIPELINE:
        assert rows[stage]["measured"]["utilisation"] == pytest.approx(1.0)
        assert rows[stage]["predicted"]["utilisation"] == pytest.approx(plan.placements[0].utilisation)


def test_a_frontier_row_names_a_shared_pool_once():
    from placement.plan import make_plan
    from placement.rows import frontier_rows

    problem = four_small()
    result = solve(problem)
    plan = make_plan(problem, result, evaluate(problem, result.assignment), tvm_version=None)
    [row] = frontier_rows([plan])
    assert row["placement"] == "feat+emb+cls_a+cls_b@c1x1 (one pool)"
