"""`placement verify` on a two-piece local plan with tiny ONNX models (a profiles CSV and this
machine's offers: no profiling): a short run measures every piece, the link across tiers adds
its configured delay, the harness's own serving overhead is measured and added to the plan's p95
as documented, a killed worker is reported, and SIGINT leaves no process behind."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pandas as pd
import psutil
import pytest
from onnx import TensorProto, helper, numpy_helper

from placement import api
from placement.verify import verify, write_this_machine_offers
from placement.verify.report import lines, serving_overhead
from placement.verify.run import RunRecord
from placement.verify.topology import SINK, SOURCE, Group, Link, Stage, Topology
from profiles import table as pt

RTT_MS = 40.0


def mlp(path, n: int, m: int) -> None:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((n, n)) * 0.1).astype("float32"), "W"),
             numpy_helper.from_array(rng.standard_normal((n, m)).astype("float32"), "W2")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Relu", ["y"], ["r"]),
         helper.make_node("MatMul", ["r", "W2"], ["out"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, m])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """head on this machine as the site device -> tail on this machine as a cloud offer."""
    folder = tmp_path_factory.mktemp("verify")
    mlp(folder / "head.onnx", 64, 32)
    mlp(folder / "tail.onnx", 32, 8)
    offers = write_this_machine_offers(folder / "offers.csv", unit_usd=50.0, hourly_usd=0.01)
    hw = pd.read_csv(offers)["hardware"][0]
    rows = [{pt.PIECE: piece, pt.HARDWARE: hw, pt.RUNTIME: "onnxruntime", pt.BATCH: 1,
             pt.LATENCY_MS_P50: 0.2, pt.LATENCY_MS_P95: 0.4, pt.MEMORY_MB: 10.0, pt.SOURCE: "imported",
             pt.MEASURED_AT: "2026-01-01", pt.TVM_VERSION: "0.27.0", pt.ERROR_BAND: None}
            for piece in ("head", "tail")]
    pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS).to_csv(folder / "profiles.csv", index=False)
    (folder / "spec.yaml").write_text(f"""name: two-piece
models:
  - {{name: head, onnx: head.onnx, inputs: {{x: [1, 64]}}}}
  - {{name: tail, onnx: tail.onnx, inputs: {{x: [1, 32]}}}}
dataflow:
  - {{from: source, to: head, bytes: 256}}
  - {{from: head, to: tail, bytes: 128}}
  - {{from: tail, to: sink, bytes: 32}}
load: {{sites: 1, rate_per_site_rps: 10, arrival: periodic}}
slo: {{latency_ms: 500, percentile: 95}}
monthly_budget_usd: 100000
hardware:
  edge: [this-machine]
  cloud: [{{provider: aws, regions: [local]}}]
network: {{uplink_mbps: 10, downlink_mbps: 50, rtt_ms: {{local: {RTT_MS}}}}}
""")
    return folder


def workspace(case):
    return api.Workspace.open(case / "spec.yaml", offers_csv=case / "offers.csv",
                              profiles_csv=case / "profiles.csv")


def split_plan(ws):
    """head on the site device, tail in the cloud pool: one link each way crosses tiers."""
    return ws.evaluate({"head": "edge:this-machine", "tail": "aws:local:this-machine"}).plan


@pytest.fixture(scope="module")
def short_run(case):
    """One short run of the split plan, shared by the tests that read its report."""
    ws = workspace(case)
    return verify(ws, split_plan(ws), duration_s=2.0)


def test_a_short_run_measures_every_piece_and_the_link_delay(short_run):
    result = short_run
    assert result.runnable, result.cannot_run
    data = result.data
    e = data["end_to_end"]
    assert data["failure"] is None
    assert e["requests_sent"] >= 15 and e["requests_done"] == e["requests_sent"]
    for stage in data["stages"]:
        assert stage["requests"] == e["requests_sent"]
        assert stage["measured"]["compute_ms_p50"] > 0
    # head -> tail (uplink) and tail -> sink (downlink) cross: bytes ÷ bandwidth + RTT/2 each
    delays = {(link["from"], link["to"]): link for link in data["links"]}
    up, down = delays[("head", "tail")], delays[("tail", "sink")]
    assert up["delay_ms"] == pytest.approx(up["bytes"] * 8 / 10_000 + RTT_MS / 2)
    assert down["delay_ms"] == pytest.approx(down["bytes"] * 8 / 50_000 + RTT_MS / 2)
    # measured: no request comes back sooner than the two emulated links
    latencies_floor = up["delay_ms"] + down["delay_ms"]
    assert e["measured_ms_p50"] >= latencies_floor
    assert e["measured_ms_p50"] < latencies_floor + 100.0  # the links, not something else, dominate
    assert e["predicted_ms"] > 0 and e["ratio"] is not None


def test_the_serving_overhead_is_measured_before_the_run(short_run):
    o = short_run.data["serving_overhead"]
    # probes through both worker groups (the site device, the pool), within the 1 s budget
    assert set(o["groups"]) == {"site edge:this-machine", "pool aws:local:this-machine (tail)"}
    assert all(g["probes"] >= 50 for g in o["groups"].values())
    assert o["probes"] == sum(g["probes"] for g in o["groups"].values())
    assert 0.0 < o["probe_s"] < 3.0
    # a round trip through a multiprocessing queue each way: positive, finite, well under 50 ms
    assert 0.0 < o["hop_ms_p50"] <= o["hop_ms_p95"] <= o["hop_ms_max"] < 50.0
    assert all(math.isfinite(o[k]) for k in ("hop_ms_p50", "hop_ms_p95", "ms", "ms_independent"))
    # head on the site device, tail in the pool: the dispatcher hands each request over twice
    assert o["hops"] == 2


def test_the_prediction_with_overhead_is_the_plan_plus_hops_times_the_hop_p95(short_run):
    data = short_run.data
    e, o = data["end_to_end"], data["serving_overhead"]
    assert e["percentile"] == 95 and o["per_hop_ms"] == o["hop_ms_p95"]
    assert e["serving_overhead_ms"] == pytest.approx(o["hops"] * o["hop_ms_p95"])
    assert e["predicted_with_overhead_ms"] == pytest.approx(e["predicted_ms"] + o["hops"] * o["hop_ms_p95"])
    assert e["ratio"] == pytest.approx(e["measured_ms_p95"] / e["predicted_ms"])
    assert e["ratio_with_overhead"] == pytest.approx(e["measured_ms_p95"] / e["predicted_with_overhead_ms"])
    assert e["ratio_with_overhead"] < e["ratio"]


def test_the_overhead_is_in_the_text_and_the_json(short_run):
    data = short_run.data
    e = data["end_to_end"]
    text = "\n".join(lines(data))
    assert "serving overhead" in text and "2 hop(s) on the critical path" in text
    assert f"+ serving overhead {e['serving_overhead_ms']:.2f} = predicted {e['predicted_with_overhead_ms']:.2f} ms" in text
    assert f"/ (plan + overhead) = {e['ratio_with_overhead']:.3f}" in text
    back = json.loads(json.dumps(data))  # what `placement verify --json` prints
    assert back["end_to_end"]["predicted_with_overhead_ms"] == pytest.approx(e["predicted_with_overhead_ms"])
    assert back["serving_overhead"]["hop_ms_p95"] == pytest.approx(data["serving_overhead"]["hop_ms_p95"])


def _topology(local_chain: bool) -> Topology:
    """a -> b -> c: a and b on the site device (b handed over inside the worker when
    `local_chain`, else over a link the plan charges), c in a pool; a also feeds the sink."""
    stages = {n: Stage(n, n, n, n, g, tier, "o", "hw", "onnxruntime", 1)
              for n, g, tier in (("a", "site", "edge"), ("b", "site", "edge"), ("c", "pool", "cloud"))}
    groups = {"site": Group("site", "site", 1, ["a", "b"]), "pool": Group("pool", "pool", 2, ["c"])}
    links = [Link(SOURCE, "a", "site", "site", 1), Link("a", "b", "site", "site", 1, 0.0 if local_chain else 5.0),
             Link("b", "c", "site", "cloud", 1, 10.0), Link("c", SINK, "cloud", "site", 1, 10.0),
             Link("a", SINK, "site", "site", 1)]
    return Topology(stages, groups, links)


def test_hops_count_the_visits_the_dispatcher_makes_on_the_critical_path():
    assert _topology(local_chain=True).hops(["a", "b", "c"]) == 2     # b runs inside a's worker
    assert _topology(local_chain=False).hops(["a", "b", "c"]) == 3
    assert _topology(local_chain=False).hops(["a"]) == 1              # the critical path is a -> sink
    assert _topology(local_chain=False).hops([]) == 3                 # none matches: the most of any path


def test_the_overhead_composes_as_documented():
    """hops x the per-hop percentile, pooled over the groups; resampled independent hops beside it
    (not always below: here 5 % of hops take 3 ms, and 14 % of 3 independent hops meet one)."""
    record = RunRecord(hop_ms={"site": [1.0] * 90 + [3.0] * 10, "pool": [1.0] * 100}, probe_s=0.5)
    plan = type("Plan", (), {"latency": type("Latency", (), {"percentile": 95, "critical_path": ["a", "b", "c"]})})
    o = serving_overhead(record, _topology(local_chain=False), plan)
    assert o["probes"] == 200 and o["hops"] == 3
    assert o["per_hop_ms"] == pytest.approx(float(np.percentile([1.0] * 190 + [3.0] * 10, 95)))
    assert o["ms"] == pytest.approx(3 * o["per_hop_ms"])
    assert o["ms"] == pytest.approx(3.3)
    assert o["ms_independent"] == pytest.approx(5.0)


def test_a_piece_on_other_hardware_is_named_and_not_run(case):
    ws = workspace(case)
    plan = split_plan(ws)
    plan.placements[1].hardware = "graviton3"
    result = verify(ws, plan, duration_s=1.0)
    assert not result.runnable
    assert any("tail" in line and "graviton3" in line for line in result.cannot_run)


def test_a_killed_worker_is_reported_and_the_run_ends(case):
    ws = workspace(case)
    me = psutil.Process()

    def on_event(msg):
        if msg.startswith("running"):
            workers = [c for c in me.children() if "resource_tracker" not in " ".join(c.cmdline())]
            workers[0].kill()

    started = time.monotonic()
    result = verify(ws, split_plan(ws), duration_s=20.0, on_event=on_event)
    assert "killed by signal 9" in result.data["failure"]
    assert time.monotonic() - started < 20.0  # ended early, not after the full duration
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in result.data["worker_pids"])


def test_sigint_leaves_no_process_behind(case):
    cmd = [sys.executable, "-m", "placement.cli", "verify", str(case / "spec.yaml"), "--offers",
           str(case / "offers.csv"), "--profiles", str(case / "profiles.csv"), "--duration", "60"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith("running") or time.monotonic() > deadline:
            break
    children = parent.children(recursive=True)
    assert children, "no worker processes started"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_a_run_gives_its_compute_as_served_rows_with_the_load_noted(short_run, case):
    """Each stage's compute as the run measured it becomes a measured-served row of its piece,
    bound to the piece's model, with the load it served under and the machine's other work."""
    from profiles.onnx_prep import model_digest
    from profiles.store import MODEL, OTHERS_CPU_SHARE, SERVED_LOAD

    data = short_run.data
    machine = data["machine"]
    assert 0.0 <= machine["others_cpu_share_before"] <= 1.0 and 0.0 <= machine["others_cpu_share_during"] <= 1.0
    assert 0.25 * machine["cores"] <= machine["free_cores"] <= machine["cores"]
    rows = {r[pt.PIECE]: r for r in short_run.served_rows}
    assert set(rows) == {"head", "tail"}
    for stage in data["stages"]:
        r = rows[stage["piece"]]
        assert r[pt.SOURCE] == "measured-served" and r[pt.RUNTIME] == "onnxruntime" and r[pt.BATCH] == 1
        assert r[pt.HARDWARE] == stage["hardware"]
        # batch 1: how long a call held its worker, at least the runtime call itself
        m = stage["measured"]
        assert r[pt.LATENCY_MS_P50] == m["held_ms_p50"] >= m["compute_ms_p50"]
        assert r[pt.LATENCY_MS_P95] == max(m["held_ms_p95"], m["held_ms_p50"])
        assert r[MODEL] == model_digest(case / f"{stage['piece']}.onnx")
        assert r[OTHERS_CPU_SHARE] == machine["others_cpu_share_during"]
        assert f"{data['scale']['rate_per_site_rps']:.4g} req/s periodic" in r[SERVED_LOAD]
        assert f"{stage['requests']} requests" in r[SERVED_LOAD]
    assert "site device" in rows["head"][SERVED_LOAD] and "pool of 1" in rows["tail"][SERVED_LOAD]
    assert "this machine: other processes used" in "\n".join(lines(data))


def test_stored_served_rows_win_over_rows_measured_alone(short_run, case, tmp_path, monkeypatch):
    """`--store-profiles`: the next profile of the same model on this machine uses the served
    row (the compute the run saw) instead of measuring it alone; another model with the same
    piece name does not."""
    from placement.verify.served import store_served_rows
    from profiles.measure import MeasureConfig
    from profiles.paths import CACHE_ENV
    from profiles.profiler import PieceSource, profile_pieces
    from profiles.providers import default_row_providers

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert store_served_rows(short_run.served_rows) == 2
    assert store_served_rows(short_run.served_rows) == 2  # the same key: replaced, not added
    from profiles.cache import ProfileCache

    assert len(ProfileCache().store.listing(source="measured-served")) == 2
    hw = short_run.served_rows[0][pt.HARDWARE]
    fast = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5)
    head = PieceSource(piece="head", onnx_path=case / "head.onnx", input_shapes={"x": [1, 64]})
    table = profile_pieces([head], [hw], runtimes=("onnxruntime",), config=fast,
                           row_providers=default_row_providers()).table
    assert list(table[pt.SOURCE]) == ["measured-served"]
    served = next(r for r in short_run.served_rows if r[pt.PIECE] == "head")
    assert table[pt.LATENCY_MS_P50].iloc[0] == pytest.approx(served[pt.LATENCY_MS_P50])
    other = tmp_path / "other.onnx"
    mlp(other, 64, 16)  # another model named head
    table = profile_pieces([PieceSource(piece="head", onnx_path=other, input_shapes={"x": [1, 64]})], [hw],
                           runtimes=("onnxruntime",), config=fast, row_providers=default_row_providers()).table
    assert list(table[pt.SOURCE]) == ["measured-local"]


def test_the_cli_stores_the_served_rows(case, tmp_path):
    env = {**os.environ, "PLACEMENT_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "placement.cli", "verify", str(case / "spec.yaml"), "--offers",
           str(case / "offers.csv"), "--profiles", str(case / "profiles.csv"), "--duration", "3",
           "--store-profiles"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "stored head on" in done.stderr and "2 measured-served row(s) in the profile store" in done.stderr
    listed = subprocess.run([sys.executable, "-m", "placement.cli", "profiles", "list", "--source",
                             "measured-served", "--json"], capture_output=True, text=True, env=env, timeout=120)
    rows = json.loads(listed.stdout)
    assert sorted(r["piece"] for r in rows) == ["head", "tail"]
    assert all(r["served_load"].startswith("verify ") for r in rows)
    table = subprocess.run([sys.executable, "-m", "placement.cli", "profiles", "list"], capture_output=True,
                           text=True, env=env, timeout=120).stdout
    assert "head (onnxruntime, batch 1," in table and "measured-served: verify " in table


@pytest.mark.skipif(not os.path.exists("/proc/thread-self/schedstat") or not hasattr(os, "sched_setaffinity"),
                    reason="Linux schedstat and CPU affinity")
def test_core_wait_counts_the_time_a_worker_waits_for_a_core():
    """What verify reports as "waited for a core": this thread and a spinning process pinned
    to one core take turns, so this thread's run-queue delay grows by a good part of the time;
    alone on the machine it hardly grows."""
    from placement.verify.worker import core_wait_ns

    def spin_for(seconds):
        waited = core_wait_ns()
        t = time.monotonic()
        while time.monotonic() - t < seconds:
            pass
        return (core_wait_ns() - waited) / 1e9

    before = os.sched_getaffinity(0)
    core = min(before)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {core})
        os.sched_setaffinity(0, {core})
        time.sleep(0.2)
        shared = spin_for(1.0)
    finally:
        hog.kill()
        hog.wait()
        os.sched_setaffinity(0, before)
    assert shared >= 0.25  # about half the second, two runnable tasks on one core


def test_overlap_shares_and_the_alone_and_overlapped_compute():
    """A call's overlap is the share of it during which any other worker computed; a stage's
    compute is split into calls alone (< 10 %) and overlapped all along (> 90 %)."""
    from placement.verify.interference import by_stage, overlap_shares

    calls = [("a", "x", 0.0, 1.0), ("b", "y", 0.5, 0.75), ("c", "y", 0.6, 0.8),  # b and c overlap each other
             ("a", "x", 2.0, 3.0), ("b", "y", 5.0, 6.0)]
    shares = overlap_shares(calls)
    assert shares[0] == pytest.approx(0.3)         # b and c together cover 0.5-0.8 of a's 0-1
    assert shares[1] == pytest.approx(1.0)         # a covers all of b's call
    assert shares[2] == pytest.approx(1.0)
    assert shares[3] == 0.0 and shares[4] == 0.0
    # 12 calls alone at 10 ms on worker p, 12 overlapped at 15 ms on p while q computes all along
    calls = [("p", "s", t, t + 0.010) for t in np.arange(12) * 1.0]
    calls += [("p", "s", 100.0 + t, 100.015 + t) for t in np.arange(12) * 1.0]
    calls += [("q", "r", 100.0 + t - 0.001, 100.020 + t) for t in np.arange(12) * 1.0]
    figures = by_stage(calls)["s"]
    assert figures["compute_alone_calls"] == 12 and figures["compute_overlapped_calls"] == 12
    assert figures["compute_alone_ms_p50"] == pytest.approx(10.0)
    assert figures["compute_overlapped_ms_p95"] == pytest.approx(15.0)
    assert by_stage(calls)["r"]["compute_alone_ms_p50"] is None  # r never ran alone


def test_a_plan_says_when_it_picks_a_runtime_measured_alone_beside_one_measured_serving(case, tmp_path):
    """Served rows are slower than rows measured alone, so the planner may move a piece to a
    runtime that has only the latter: the plan says so, and what to do."""
    hw = pd.read_csv(case / "offers.csv")["hardware"][0]
    base = {pt.HARDWARE: hw, pt.BATCH: 1, pt.MEMORY_MB: 10.0, pt.MEASURED_AT: "2026-12-03",
            pt.TVM_VERSION: "", pt.ERROR_BAND: None}
    rows = [{**base, pt.PIECE: "head", pt.RUNTIME: "onnxruntime", pt.LATENCY_MS_P50: 5.0,
             pt.LATENCY_MS_P95: 6.0, pt.SOURCE: "measured-served"},
            {**base, pt.PIECE: "head", pt.RUNTIME: "openvino", pt.LATENCY_MS_P50: 1.0,
             pt.LATENCY_MS_P95: 1.2, pt.SOURCE: "measured-local"},
            {**base, pt.PIECE: "tail", pt.RUNTIME: "onnxruntime", pt.LATENCY_MS_P50: 0.2,
             pt.LATENCY_MS_P95: 0.4, pt.SOURCE: "measured-local"}]
    csv = tmp_path / "profiles.csv"
    pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS).to_csv(csv, index=False)
    ws = api.Workspace.open(case / "spec.yaml", offers_csv=case / "offers.csv", profiles_csv=csv)
    plan = ws.evaluate({"head": "edge:this-machine", "tail": "aws:local:this-machine"}).plan
    head = next(p for p in plan.placements if p.piece == "head")
    assert head.runtime == "openvino"
    said = [n for n in plan.notes if n.startswith("warning: head on")]
    assert said and "openvino's latency was measured alone" in said[0] and "onnxruntime" in said[0]
    assert not any("tail on" in n for n in plan.notes)  # the CLI prints warnings on stderr


def test_nothing_is_stored_from_a_run_that_ended_early_or_from_too_few_calls(short_run, case):
    """A run cut short by a dead worker stores no rows; a stage with fewer than 20 calls is named
    and left out; each says why in one line."""
    import copy

    from placement.verify.served import MIN_SAMPLES, served_rows
    from placement.verify.topology import plan_topology

    ws = workspace(case)
    topology = plan_topology(split_plan(ws))
    died = {**copy.deepcopy(short_run.data), "failure": "worker site-0 (pid 1) killed by signal 9"}
    rows, notes = served_rows(ws, topology, died)
    assert rows == [] and notes == ["not stored: the run ended early (worker site-0 (pid 1) killed by signal 9)"]
    few = copy.deepcopy(short_run.data)
    few["stages"][0]["requests"] = MIN_SAMPLES - 1
    rows, notes = served_rows(ws, topology, few)
    assert [r[pt.PIECE] for r in rows] == [few["stages"][1]["piece"]]
    assert notes == [f"not stored: {few['stages'][0]['stage']} ran {MIN_SAMPLES - 1} request(s) (fewer than {MIN_SAMPLES})"]
