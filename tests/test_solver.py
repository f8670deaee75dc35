"""The CP-SAT model against hand-checked cases and against brute force over `evaluate`."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from factories import build, one_model_spec, one_model_tables, profile_row

from placement.evaluate import evaluate, resolve_assignment, tiered_cost_usd
from placement.problem import best_runtime_rows, build_problem, runtime_front
from placement.queueing import (
    erlang_c,
    ggc_wait_ms_at_percentile,
    service_mean_ms,
    service_scv,
    wait_ms_at_percentile,
)
from placement.solver import PlacementModel, solve
from placement.spec import parse_spec
from placement.synthetic import EGRESS_SOURCE, EGRESS_TIERS, synthetic_instance
from profiles import table as pt


def _lower_bound(combo, objective) -> float:
    """No more than `evaluate` says: the cloud pools' bill (each pool once), or the slowest
    piece (every piece lies on a source-to-sink path)."""
    if objective != "cost":
        return max(o.latency_ms for o in combo)
    pools = {o.pool or o.id: o.monthly_usd for o in combo}
    return sum(pools.values())


def plans(problem, cut=None):
    """Every combination of one option per piece whose pools are whole: a pool (co-located
    pieces, or a fleet's segments) that some of its pieces leave is skipped, as `evaluate`
    rejects it (tests/test_colocate.py checks that it does). `cut(partial)`: True skips every
    completion of a partial combination."""
    pieces = problem.pieces
    chosen: list = []

    def walk(i):
        if i == len(pieces):
            yield tuple(chosen)
            return
        piece = pieces[i]
        forced = {o.pool for o in chosen if piece in o.pool_members}
        for o in problem.options[piece]:
            if forced and forced != {o.pool}:
                continue  # an earlier piece chose a pool this piece belongs to
            if o.pool is not None and any(q.pool != o.pool for q in chosen if q.piece in o.pool_members):
                continue  # this pool's earlier pieces run elsewhere
            chosen.append(o)
            if cut is None or not cut(chosen):
                yield from walk(i + 1)
            chosen.pop()

    yield from walk(0)


def brute_force(problem, objective="cost"):
    """Cheapest (or fastest) feasible assignment by enumerating every combination (skipping,
    exactly, those whose lower bound cannot beat the best so far)."""
    best = None
    pieces = problem.pieces

    def cut(partial):
        return best is not None and _lower_bound(partial, objective) >= best[0]

    for combo in plans(problem, cut):
        ev = evaluate(problem, dict(zip(pieces, combo)))
        if not ev.feasible:
            continue
        key = ev.monthly_usd if objective == "cost" else ev.latency_ms
        if best is None or key < best[0]:
            best = (key, ev)
    return best


def test_hand_checked_costs_of_edge_and_cloud():
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(sites=100, uplink=50.0), offers, profiles, io_bytes)
    edge = evaluate(problem, resolve_assignment(problem, {"det": "edge:pi"}))
    # 100 sites x (120 $ / 36 months + 6 W x 730 h x 0.15 $/kWh)
    assert edge.monthly_usd == pytest.approx(100 * (120 / 36 + 0.006 * 730 * 0.15))
    assert [i.kind for i in edge.cost_items] == ["edge-capex", "edge-power"]
    cloud = evaluate(problem, resolve_assignment(problem, {"det": "aws:r0:c1"}))
    # load = 100 sites x 1 rps x 10 ms = 1.0 replica -> 2 replicas under the 0.7 cap
    assert cloud.assignment["det"].replicas == 2
    # the fastest runtime was chosen (onnxruntime 12 ms beats tvm 40 ms)
    assert cloud.assignment["det"].runtime == "onnxruntime"
    gb = 4_000 * 100 * 730 * 3600 / 1e9
    egress = (gb - 100) * 0.09
    assert cloud.monthly_usd == pytest.approx(2 * 0.1 * 730 + egress)
    up = 150_528 * 8 / 50_000 + 10.0
    down = 4_000 * 8 / 100_000 + 10.0
    # issue 13: the wait is G/G/c (Allen-Cunneen) with the service mean and cs² from p50 10 / p95 12 ms,
    # no longer M/M/c (Poisson arrivals from 100 sites: ca² = 1)
    wait = ggc_wait_ms_at_percentile(2, 100.0, service_mean_ms(10.0, 12.0), 95,
                                     cs2=service_scv(10.0, 12.0), ca2=1.0)
    assert cloud.latency_ms == pytest.approx(up + 12.0 + wait + down)
    assert cloud.critical_path == ["source", "det", "sink"]


def test_erlang_c_matches_textbook_values():
    # M/M/1: P(wait) = rho; M/M/2 with a = 1: C = 1/3.
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # p95 wait of M/M/1 at rho = 0.5, service 10 ms: ln(0.5/0.05) / (100 - 50) s
    assert wait_ms_at_percentile(1, 50.0, 10.0, 95) == pytest.approx(1000 * math.log(10) / 50)
    assert wait_ms_at_percentile(1, 100.0, 10.0, 95) == math.inf


def test_batching_trades_fill_wait_for_throughput():
    from factories import build, profile_row

    offers, profiles, io_bytes = one_model_tables()
    # batch 4 takes 20 ms (p50) / 24 ms (p95) on c1: 5 ms per request instead of 10
    profiles.loc[len(profiles)] = {**profile_row("det", "hw-c1", 20.0, 24.0), "batch": 4}
    problem = build(one_model_spec(sites=100, uplink=50.0, cloud_types=["c1"], edge=()), offers,
                    profiles, io_bytes)
    b4 = [o for o in problem.options["det"] if o.batch == 4]
    assert b4, "batch-4 options are offered"
    opt = min(b4, key=lambda o: o.replicas)
    # 100 calls/s: batches of 4 arrive at 25/s, each busy 20 ms -> 0.5 replica -> 1 replica at cap 0.7
    assert opt.replicas == 1 and opt.utilisation == pytest.approx(0.5)
    # first request waits for 3 more: the 95th percentile of Gamma(3, 100/s) = 6.296 / 100 s
    assert opt.batch_fill_ms == pytest.approx(62.96, abs=0.01)
    assert opt.compute_ms_p95 == pytest.approx(24.0)
    # issue 13: G/G/1 with the batch row's cs² (p50 20 / p95 24 ms) and batches of 4 Poisson
    # arrivals (ca² = 1/4), no longer M/M/1
    assert opt.wait_ms == pytest.approx(opt.batch_fill_ms + ggc_wait_ms_at_percentile(
        1, 25.0, service_mean_ms(20.0, 24.0), 95, cs2=service_scv(20.0, 24.0), ca2=0.25))
    # batching halves the replicas (cost) at a price in latency; with a loose SLO it wins
    result = solve(problem)
    assert problem.option(result.assignment["det"]).batch == 4


def test_tiered_egress():
    tiers = ((100.0, 0.0), (10_240.0, 0.09), (math.inf, 0.085))
    assert tiered_cost_usd(tiers, 50) == 0.0
    assert tiered_cost_usd(tiers, 1_100) == pytest.approx(1_000 * 0.09)
    assert tiered_cost_usd(tiers, 10_340 + 10) == pytest.approx(10_240 * 0.09 + 10 * 0.085)


def test_slo_infeasible_is_reported_not_raised():
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(slo_ms=5.0), offers, profiles, io_bytes)
    result = solve(problem)
    assert result.status == "infeasible"
    assert result.assignment is None
    assert brute_force(problem) is None


def test_budget_binds():
    offers, profiles, io_bytes = one_model_tables()
    spec = one_model_spec(sites=100, uplink=50.0, slo_ms=1000.0)
    cheapest = solve(build(spec, offers, profiles, io_bytes))
    assert cheapest.status == "optimal"
    # A budget a cent below the cheapest plan: nothing fits.
    tight = dict(spec, monthly_budget_usd=cheapest.objective_value - 0.01)
    assert solve(build(tight, offers, profiles, io_bytes)).status == "infeasible"
    # With 10 sites the edge is cheaper but slower: the latency objective buys the cloud
    # until the budget falls below the cloud's price, then it must take the edge.
    few = dict(spec, load={"sites": 10, "rate_per_site_rps": 1.0}, monthly_budget_usd=1e6)
    fast = solve(build(few, offers, profiles, io_bytes), objective="latency")
    assert fast.assignment["det"].startswith("aws:r0:c1")
    edge_cost = 10 * (120 / 36 + 0.006 * 730 * 0.15)
    cloud_r1 = 0.1 * 730 + (4_000 * 10 * 730 * 3600 / 1e9 - 100) * 0.09
    assert edge_cost < cloud_r1
    capped = dict(few, monthly_budget_usd=(edge_cost + cloud_r1) / 2)
    result = solve(build(capped, offers, profiles, io_bytes), objective="latency")
    assert result.assignment["det"].startswith("edge:pi")


def test_edge_to_cloud_crossover_as_uplink_grows():
    offers, profiles, io_bytes = one_model_tables()
    tiers = []
    for uplink in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0):
        problem = build(one_model_spec(sites=100, uplink=uplink, slo_ms=250.0), offers, profiles,
                        io_bytes)
        result = solve(problem)
        assert result.status == "optimal"
        tiers.append(problem.option(result.assignment["det"]).tier)
    assert tiers[0] == "edge" and tiers[-1] == "cloud"
    switch = tiers.index("cloud")
    assert all(t == "cloud" for t in tiers[switch:]), tiers


@pytest.mark.parametrize("seed", range(30))
def test_optimum_equals_brute_force(seed):
    inst = synthetic_instance(3, 4, 2, seed=seed, max_extra_replicas=1, sites=(5, 50, 300)[seed % 3])
    problem = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                            egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    result = solve(problem)
    expected = brute_force(problem)
    if expected is None:
        assert result.status == "infeasible"
        return
    assert result.status == "optimal"
    got = evaluate(problem, result.assignment)
    assert got.feasible, got.violations
    # Integer micro-dollars and rounded-up egress MB: equal to the float optimum within cents.
    assert got.monthly_usd == pytest.approx(expected[0], abs=0.05)


@pytest.mark.parametrize("seed", range(15))
def test_pruning_never_removes_the_optimum(seed):
    inst = synthetic_instance(3, 5, 2, seed=200 + seed, max_extra_replicas=2, sites=(5, 50, 300)[seed % 3])
    kw = dict(egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    full = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes, prune=False, **kw)
    pruned = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes, prune=True, **kw)
    assert sum(map(len, pruned.options.values())) < sum(map(len, full.options.values()))
    expected = brute_force(full)
    result = solve(pruned)
    if expected is None:
        assert result.status == "infeasible"
        return
    assert evaluate(full, result.assignment).monthly_usd == pytest.approx(expected[0], abs=0.05)


@pytest.mark.parametrize("seed", range(10))
def test_latency_objective_equals_brute_force(seed):
    inst = synthetic_instance(3, 3, 2, seed=100 + seed, max_extra_replicas=1, sites=5)
    problem = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                            egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    result = solve(problem, objective="latency")
    expected = brute_force(problem, objective="latency")
    if expected is None:
        assert result.status == "infeasible"
        return
    got = evaluate(problem, result.assignment)
    assert got.feasible
    # latencies are rounded up to whole microseconds per option and transfer
    assert got.latency_ms == pytest.approx(expected[0], abs=0.01 * (len(problem.pieces) + 3))


def test_solver_is_deterministic_for_a_seed():
    inst = synthetic_instance(8, 10, 2, seed=7)
    problem = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                            egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    first, second = solve(problem, seed=3), solve(problem, seed=3)
    assert first.status == second.status
    assert first.assignment == second.assignment


def split_instance(uplink=5.0, slo_ms=150.0, split="auto"):
    from factories import build, profile_row

    offers, profiles, io_bytes = one_model_tables()
    spec = one_model_spec(sites=100, uplink=uplink, slo_ms=slo_ms)
    spec["models"][0]["split"] = split
    # the head is light (a few layers) and its output is small; the tail is the heavy part
    for row in (profile_row("det@t1:head", "hw-pi", 15.0, 18.0, memory_mb=40.0),
                profile_row("det@t1:head", "hw-c1", 1.5, 1.8),
                profile_row("det@t1:tail", "hw-pi", 85.0, 102.0),
                profile_row("det@t1:tail", "hw-c1", 8.5, 10.2)):
        profiles.loc[len(profiles)] = row
    io_bytes["det@t1:head"] = (150_528, 3_000)
    io_bytes["det@t1:tail"] = (3_000, 4_000)
    return build(spec, offers, profiles, io_bytes)


def test_split_model_runs_its_head_at_the_site_and_its_tail_in_the_cloud():
    problem = split_instance()
    result = solve(problem)
    assert result.status == "optimal"
    chosen = problem.option(result.assignment["det"])
    assert chosen.cut == "t1" and chosen.head.offer == "edge:pi" and chosen.tier == "cloud"
    ev = evaluate(problem, result.assignment)
    # the 3 kB cut crosses the 5 Mbps uplink: 4.8 ms + half the 20 ms round trip
    assert chosen.cut_transfer_ms == pytest.approx(3_000 * 8 / 5_000 + 10.0)
    # the head occupies the site's Pi: its device is bought and loaded
    assert set(ev.device_load) == {"edge:pi"}
    assert ev.device_load["edge:pi"][0] == pytest.approx(1.0 * 15.0 / 1000)
    assert ev.feasible
    expected = brute_force(problem)
    assert ev.monthly_usd == pytest.approx(expected[0], abs=0.05)
    # without splitting, nothing meets 150 ms: the Pi alone is too slow, the uplink too thin
    assert solve(split_instance(split="none")).status == "infeasible"
    # naming a tensor that has no profiled cut offers no split
    assert solve(split_instance(split=["t9"])).status == "infeasible"


def test_split_plan_reports_head_and_tail():
    from placement.baselines import baselines
    from placement.plan import make_plan
    from placement.report import markdown_summary

    problem = split_instance()
    result = solve(problem)
    plan = make_plan(problem, result, evaluate(problem, result.assignment), tvm_version=None)
    placed = plan.placements[0]
    assert placed.cut == "t1" and placed.head.device == "pi" and placed.head.piece == "det@t1:head"
    assert "split at t1: head on edge pi" in markdown_summary(plan)
    names = {b.name: b for b in baselines(problem)}
    assert names["best cut per model"].feasible
    assert not names["all-edge"].feasible and not names["all-cloud"].feasible


def test_upper_band_plans_estimates_at_the_top_of_their_error_band():
    from factories import build

    offers, profiles, io_bytes = one_model_tables()
    profiles = profiles[profiles["hardware"] == "hw-pi"].copy()  # only the edge device can run it
    profiles["source"], profiles["error_band"] = "estimated", 0.5
    nominal = build(one_model_spec(slo_ms=250.0), offers, profiles, io_bytes)
    spec = one_model_spec(slo_ms=250.0)
    spec["solver"]["estimated_latency"] = "upper-band"
    upper = build(spec, offers, profiles, io_bytes)
    (edge_nominal,), (edge_upper,) = nominal.options["det"], upper.options["det"]
    assert edge_upper.compute_ms_p95 == pytest.approx(1.5 * edge_nominal.compute_ms_p95)
    assert edge_upper.utilisation == pytest.approx(1.5 * edge_nominal.utilisation)
    assert edge_nominal.latency_ms < 250.0 < edge_upper.latency_ms
    assert solve(nominal).status == "optimal"
    assert solve(upper).status == "infeasible"
    assert any("top of their error band" in n for n in upper.notes)


def test_a_cloud_option_whose_crossings_miss_the_slo_is_ruled_out_before_search():
    # 150 KB up a 5 Mbps link takes 251 ms: the cloud runs det in 12 ms, but its input cannot
    # reach it within a 250 ms SLO, while the Pi at the site can.
    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(uplink=5.0, slo_ms=250.0), offers, profiles, io_bytes)
    pm = PlacementModel(problem)
    by_tier = {}
    for o in problem.options["det"]:
        by_tier.setdefault(o.tier, []).append(pm.allowed("det", o.id))
    assert by_tier["edge"] == [True]
    assert by_tier["cloud"] and not any(by_tier["cloud"])
    # A faster uplink brings them back.
    fast = build(one_model_spec(uplink=50.0, slo_ms=250.0), offers, profiles, io_bytes)
    pm_fast = PlacementModel(fast)
    assert any(pm_fast.allowed("det", o.id) for o in fast.options["det"] if o.tier == "cloud")


@pytest.mark.parametrize("seed", range(8))
def test_static_bounds_keep_every_option_of_every_plan_that_meets_the_slo(seed):
    inst = synthetic_instance(3, 3, 2, seed=300 + seed, max_extra_replicas=1, sites=5)
    problem = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes,
                            egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    pm = PlacementModel(problem)
    checked = 0
    for combo in plans(problem):
        ev = evaluate(problem, dict(zip(problem.pieces, combo)))
        # the plan's own latency as the SLO (plus the model's rounding of each term up to 1 us)
        pm.set_limits(slo_ms=ev.latency_ms + 0.001 * (2 * len(problem.flows) + 3), budget_usd=None)
        assert all(pm.allowed(p, o.id) for p, o in zip(problem.pieces, combo)), combo
        checked += 1
    assert checked > 10


def _two_runtime_tables():
    """c1 runs det with onnxruntime at p50 30 / p95 36 ms, or with tvm at p50 10 / p95 40 ms:
    tvm's p95 is worse, but at 100 requests/s its p50 needs 2 replicas where onnxruntime's
    needs 5 (load 1.0 vs 3.0 replicas under the 0.7 cap)."""
    offers, profiles, io_bytes = one_model_tables()
    profiles = pd.DataFrame([
        profile_row("det", "hw-pi", 100.0, 120.0),
        profile_row("det", "hw-c1", 30.0, 36.0),
        profile_row("det", "hw-c1", 10.0, 40.0, runtime="tvm"),
    ], columns=pt.PROFILE_COLUMNS)
    return offers, profiles, io_bytes


def test_a_runtime_with_a_worse_p95_but_a_much_better_p50_is_kept_and_wins():
    offers, profiles, io_bytes = _two_runtime_tables()
    kept = best_runtime_rows(profiles)
    assert sorted(kept[kept[pt.HARDWARE] == "hw-c1"][pt.RUNTIME]) == ["onnxruntime", "tvm"]
    # Budget $300: the Pi at every site costs $399, onnxruntime's 5 replicas $365 + egress;
    # only tvm's 2 replicas ($146 + $85.6 egress) fit.
    spec = one_model_spec(sites=100, uplink=50.0, budget=300.0)
    problem = build(spec, offers, profiles, io_bytes)
    result = solve(problem)
    assert result.status == "optimal"
    chosen = evaluate(problem, result.assignment)
    assert chosen.feasible and chosen.assignment["det"].runtime == "tvm"
    assert chosen.assignment["det"].replicas == 2
    gb = 4_000 * 100 * 730 * 3600 / 1e9
    assert chosen.monthly_usd == pytest.approx(2 * 0.1 * 730 + (gb - 100) * 0.09)
    # Keeping only the lowest-p95 runtime (the old rule) finds no plan at all.
    lowest_p95 = profiles[profiles[pt.RUNTIME] != "tvm"]
    assert solve(build(spec, offers, lowest_p95, io_bytes)).status == "infeasible"
    # The unpruned problem (every runtime, every option) agrees.
    unpruned = build_problem(parse_spec(spec), profiles, offers, io_bytes, egress_tiers=EGRESS_TIERS,
                             egress_source=EGRESS_SOURCE, prune=False)
    assert solve(unpruned).objective_value == pytest.approx(result.objective_value)


def test_runtime_front_keeps_the_non_dominated_and_one_of_identical_rows():
    a = profile_row("m", "hw", 10.0, 20.0, runtime="a")
    b = profile_row("m", "hw", 5.0, 25.0, runtime="b")  # better p50, worse p95: kept
    c = profile_row("m", "hw", 10.0, 20.0, runtime="c")  # identical to a: only a stays
    d = profile_row("m", "hw", 12.0, 26.0, runtime="d")  # worse on all: dropped
    e = profile_row("m", "hw", 12.0, 26.0, 50.0, runtime="e")  # less memory: kept
    assert [r[pt.RUNTIME] for r in runtime_front([a, b, c, d, e])] == ["a", "b", "e"]
    # A dominated runtime that needs more replicas offers replica counts the other does not.
    needs = {"a": 1, "b": 1, "c": 1, "d": 3, "e": 2}
    assert [r[pt.RUNTIME] for r in runtime_front([a, b, c, d, e], replicas=lambda r: needs[r[pt.RUNTIME]])] \
        == ["a", "b", "d", "e"]


@pytest.mark.parametrize("seed", range(10))
def test_pruning_never_removes_an_optimum(seed):
    """Random instances whose runtimes trade p50 against p95: the pruned problem's optimum equals
    the unpruned one's (every runtime, every option) and brute force over the unpruned options."""
    inst = synthetic_instance(2, 3, 2, seed=700 + seed, sites=(5, 40, 120)[seed % 3],
                              max_extra_replicas=seed % 2, tail_spread=1.5, regions=2,
                              slo_ms=(90.0, 150.0, 400.0)[seed % 3])
    kw = dict(egress_tiers=inst.egress_tiers, egress_source=inst.egress_source)
    pruned = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes, **kw)
    full = build_problem(inst.spec, inst.profiles, inst.offers, inst.io_bytes, prune=False, **kw)
    assert full.num_options > pruned.num_options
    for objective in ("cost", "latency"):
        got, want = solve(pruned, objective=objective), solve(full, objective=objective)
        assert got.status == want.status
        best = brute_force(full, objective)
        if best is None:
            assert got.status == "infeasible"
            continue
        assert got.status == "optimal"
        ev = evaluate(pruned, got.assignment)
        assert ev.feasible, ev.violations
        value = ev.monthly_usd if objective == "cost" else ev.latency_ms
        assert value == pytest.approx(best[0], abs=0.01)
        assert got.objective_value == pytest.approx(want.objective_value, abs=1e-6)


@pytest.mark.parametrize("on_a_thread", [False, True])
def test_a_solve_leaves_ctrl_c_to_python(on_a_thread):
    """CP-SAT resets SIGINT to the system default after a solve unless told not to: Ctrl-C then
    killed the process (the app server after its first plan) instead of reaching the handler
    Python had (here one of the test's own, whatever earlier tests left installed)."""
    import os
    import signal
    import threading
    import time

    offers, profiles, io_bytes = one_model_tables()
    problem = build(one_model_spec(sites=100, uplink=50.0), offers, profiles, io_bytes)
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        if on_a_thread:
            worker = threading.Thread(target=solve, args=(problem,))
            worker.start()
            worker.join()
        else:
            assert solve(problem).status == "optimal"
        os.kill(os.getpid(), signal.SIGINT)  # a process left at SIG_DFL dies here
        deadline = time.monotonic() + 5.0
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)  # Python runs the handler between bytecodes of the main thread
        assert received == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)
