"""How well do the plan's latencies predict a running system? Six local plans on this machine
(`placement verify`, docs/verify.md): a chain, the same chain with Poisson arrivals, a fan-out,
everything on the site device, a cloud pool with several replicas near the utilisation cap, and a
split model. Each is planned against this machine's offers (edge device and cloud offer
`this-machine`) with profiles measured here just before (ONNX Runtime, 1 thread, 200 runs), run
for --duration seconds, and its predicted end-to-end p95 set against the measured one.

    python bench/fidelity.py [--duration 20] [--json out.json] [--only NAME] [--pool-target 0.65]

The predicted side is the plan's p95 plus this harness's serving overhead (its hop through the
dispatcher, timed by probes at the start of each run: hops on the critical path x the hop's p95,
docs/verify.md). A case is "ok" when the measured p95 is within +10 % of plan + overhead, or below
it (the plan sums per-piece p95s and uses an upper-bound wait on a shared device: it is
conservative by construction); the ratio against the plan alone is printed beside it.

Each case runs twice. First planned on isolated profiles; then planned on the rows that first run
measured while serving (how long each piece's calls held its worker, between the other pieces'
requests: what `placement verify --store-profiles` stores as `measured-served`) and run again at
the same rate, an independent measurement of the same options (at its own rate where the served
times put them over the utilisation cap). Where the second holds and the first does not, the
queueing model was right about the service times it was given, and the miss was the isolated
profile's (back-to-back runs on one warm model) against service as served."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from placement import api
from placement.verify import CLOUD_OFFER, EDGE_OFFER, verify, write_this_machine_offers
from placement.verify.session import VerifyError, evaluate_options
from profiles import table as pt
from profiles.rows import merge_rows

ROWS, WIDTH = 32, 1024
LIMIT = 1.10  # the goal: measured p95 at most 10 % above predicted (below: the model's conservatism)
POOL_REPLICAS = 3 if (os.cpu_count() or 1) >= 4 else 2
POOL_TARGET = 0.65  # the pool's utilisation per replica (the spec's cap is 0.7): --pool-target


def mlp(path: Path, layers: int, out: int = 256) -> None:
    """x[ROWS, WIDTH] -> (MatMul, Relu) x layers -> MatMul -> [ROWS, out]; tensors r0, r1, ..."""
    rng = np.random.default_rng(layers)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype("float32"), f"W{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"h{i}"]),
                  helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]
        prev = f"r{i}"
    inits.append(numpy_helper.from_array(rng.standard_normal((WIDTH, out)).astype("float32"), "Wo"))
    nodes.append(helper.make_node("MatMul", [prev, "Wo"], ["out"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [ROWS, WIDTH])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [ROWS, out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def measure(source, hardware: str, runs: int = 200) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(source.onnx_path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.random.default_rng(0).standard_normal(
        source.input_shapes.get(i.name, [d if isinstance(d, int) else 1 for d in i.shape])).astype("float32")
        for i in session.get_inputs()}
    for _ in range(20):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t) * 1000.0)
    return {pt.PIECE: source.piece, pt.HARDWARE: hardware, pt.RUNTIME: "onnxruntime", pt.BATCH: 1,
            pt.LATENCY_MS_P50: float(np.percentile(times, 50)), pt.LATENCY_MS_P95: float(np.percentile(times, 95)),
            pt.MEMORY_MB: 50.0, pt.SOURCE: "measured-local", pt.MEASURED_AT: time.strftime("%Y-%m-%d"),
            pt.TVM_VERSION: "", pt.ERROR_BAND: None}


# name: (models {name: layers}, dataflow edges, arrival, sites, target utilisation of the busiest server,
#        placement, split, headroom)
CASES = {
    "chain (periodic)": ({"a": 2, "b": 3}, [("source", "a"), ("a", "b"), ("b", "sink")], "periodic", 1, 0.4,
                         {"a": EDGE_OFFER, "b": CLOUD_OFFER}, None, 0.5),
    "chain (poisson)": ({"a": 2, "b": 3}, [("source", "a"), ("a", "b"), ("b", "sink")], "poisson", 1, 0.4,
                        {"a": EDGE_OFFER, "b": CLOUD_OFFER}, None, 0.5),
    "fan-out (poisson)": ({"a": 2, "b": 2, "c": 3}, [("source", "a"), ("a", "b"), ("a", "c"), ("b", "sink"),
                                                      ("c", "sink")], "poisson", 1, 0.4,
                          {"a": EDGE_OFFER, "b": CLOUD_OFFER, "c": CLOUD_OFFER}, None, 0.5),
    "all on site device (poisson)": ({"a": 2, "b": 2, "c": 2}, [("source", "a"), ("a", "b"), ("b", "c"),
                                                                 ("c", "sink")], "poisson", 1, 0.5,
                                     {"a": EDGE_OFFER, "b": EDGE_OFFER, "c": EDGE_OFFER}, None, 0.6),
    # several replicas, as many as this machine can run side by side with the dispatcher beside
    # them (two on two cores: three replica processes at 0.65 would be 1.95 busy cores of two,
    # and would measure processes waiting for a core, not the queue)
    f"cloud pool x{POOL_REPLICAS} near cap (poisson)": ({"a": 10}, [("source", "a"), ("a", "sink")], "poisson",
                                                        20, POOL_TARGET, {"a": f"{CLOUD_OFFER}/r{POOL_REPLICAS}"}, None,
                                                        0.75),
    "split model (periodic)": ({"a": 4}, [("source", "a"), ("a", "sink")], "periodic", 1, 0.4,
                               {}, "r0", 0.5),
}


def write_case(folder: Path, models: dict, edges: list, arrival: str, sites: int, rate: float,
               split: str | None) -> None:
    for name, layers in models.items():
        mlp(folder / f"{name}.onnx", layers)
    model_lines = "\n".join(
        f"  - {{name: {n}, onnx: {n}.onnx, inputs: {{x: [{ROWS}, {WIDTH}]}}"
        + (f", split: [{split}]" if split else "") + "}" for n in models)
    flow = "\n".join(f"  - {{from: {a}, to: {b}, bytes: {ROWS * WIDTH * 4 if b != 'sink' else ROWS * 256 * 4}}}"
                     for a, b in edges)
    (folder / "spec.yaml").write_text(f"""name: {folder.name}
models:
{model_lines}
dataflow:
{flow}
load: {{sites: {sites}, rate_per_site_rps: {rate}, arrival: {arrival}}}
slo: {{latency_ms: 250, percentile: 95}}
monthly_budget_usd: 1000000
hardware:
  edge: [this-machine]
  cloud: [{{provider: aws, regions: [local]}}]
network: {{uplink_mbps: 50, downlink_mbps: 200, rtt_ms: {{local: 20}}}}
solver: {{max_extra_replicas: 4}}
""")


def rate_for(ws, servers: list[list[str]], replicas: int, sites: int, target: float) -> float:
    """The rate per site that puts the busiest server (a list of pieces sharing it, `replicas`
    of it) at `target` utilisation, from the service means the plan uses."""
    from placement.queueing import service_mean_ms

    table = ws.profiles_table

    def mean(piece):
        row = table[table[pt.PIECE] == piece].iloc[0]
        return service_mean_ms(float(row[pt.LATENCY_MS_P50]), float(row[pt.LATENCY_MS_P95]))

    busiest = max(sum(mean(p) for p in server) for server in servers)
    return target * replicas * 1000.0 / busiest / sites


def run_case(root: Path, name: str, case, duration: float) -> dict:
    """The case twice: planned on isolated profiles, then on the rows that run measured while
    serving, at the same rate (the rate that puts the busiest server at the case's target
    utilisation by the isolated profile). Where the served times put the plan's options over the
    utilisation cap at that rate (the pool near the cap: the planner would buy another replica),
    the served pass sets its rate from the served rows instead, and the table says so."""
    models, edges, arrival, sites, target, placement, split, headroom = case
    folder = root / f"case{len(list(root.iterdir())) + 1}"
    folder.mkdir()
    write_case(folder, models, edges, arrival, sites, 1.0, split)
    offers = write_this_machine_offers(folder / "offers.csv", unit_usd=300.0, hourly_usd=0.05)
    hardware = pd.read_csv(offers)[pt.HARDWARE][0]
    ws0 = api.Workspace.open(folder / "spec.yaml", offers_csv=offers, profiles_csv=None)
    rows = [measure(s, hardware) for s in ws0.pieces]
    pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS).to_csv(folder / "profiles.csv", index=False)
    out = {"case": name, "arrival": arrival}
    try:
        isolated, result = run_pass(folder, case, folder / "profiles.csv", duration, name)
        out["isolated"] = _summary(result.data)
        # the same options planned on the rows this run measured while serving (what `placement
        # verify --store-profiles` stores), run again: an independent measurement
        merge_rows(isolated.profiles_table, result.served_rows).to_csv(folder / "profiles-served.csv", index=False)
        try:
            _, served = run_pass(folder, case, folder / "profiles-served.csv", duration, f"{name}, served",
                                 rate=result.data["scale"]["spec_rate_per_site_rps"])
            out["served_rate"] = "the isolated pass's"
        except VerifyError:  # over the cap at that rate
            _, served = run_pass(folder, case, folder / "profiles-served.csv", duration, f"{name}, served")
            out["served_rate"] = "its own (over the cap at the isolated pass's)"
        out["served"] = _summary(served.data)
    except Exception as exc:  # noqa: BLE001 - a case that cannot run is a row of the table, not the end
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def run_pass(folder: Path, case, profiles_csv: Path, duration: float, label: str, rate: float | None = None):
    """(workspace, verify result) of the case planned on `profiles_csv` at `rate` per site
    (default: the rate that puts the busiest server at the case's target utilisation)."""
    models, edges, arrival, sites, target, placement, split, headroom = case
    offers = folder / "offers.csv"
    ws = api.Workspace.open(folder / "spec.yaml", offers_csv=offers, profiles_csv=profiles_csv)
    on_site = [m for m in models if placement.get(m) == EDGE_OFFER]
    servers = ([on_site] if on_site else []) + [[m] for m in models if m not in on_site]
    if split:
        servers = [[p.piece] for p in ws.pieces if p.piece.startswith(f"{next(iter(models))}@{split}:")]
    replicas = POOL_REPLICAS if any(v.endswith(f"/r{POOL_REPLICAS}") for v in placement.values()) else 1
    if rate is None:
        rate = round(rate_for(ws, servers, replicas, sites, target), 3)
    write_case(folder, models, edges, arrival, sites, rate, split)
    ws = api.Workspace.open(folder / "spec.yaml", offers_csv=offers, profiles_csv=profiles_csv)
    problem = ws.problem(prune=False)
    assignment = {}
    for piece in problem.pieces:
        options = problem.options[piece]
        if split:
            options = [o for o in options if o.id.startswith(f"split@{split}:")]
        else:
            offer, _, reps = placement[piece].partition("/")
            options = [o for o in options if o.offer == offer and o.runtime == "onnxruntime" and o.batch == 1
                       and (not reps or o.replicas == int(reps[1:]))]
            options = options if reps or not options else [min(options, key=lambda o: o.replicas)]
        if not options:
            raise VerifyError(f"{piece}: no option {placement.get(piece, split)} at {rate} req/s per site "
                              "(over the utilisation cap)")
        assignment[piece] = options[0].id
    plan = evaluate_options(ws, assignment, None)
    return ws, verify(ws, plan, duration_s=duration, headroom=headroom,
                      on_event=lambda msg: print(f"  [{label}] {msg}", file=sys.stderr))


def _summary(data: dict) -> dict:
    e, o = data["end_to_end"], data["serving_overhead"]
    return {"scale": data["scale"]["note"], "machine": data["machine"],
            "utilisation": {s["stage"]: (s["predicted"]["utilisation"], s["measured"]["utilisation"])
                            for s in data["stages"]},
            "predicted_p95_ms": e["predicted_ms"], "measured_p50_ms": e["measured_ms_p50"],
            "measured_p95_ms": e["measured_ms_p95"], "measured_p99_ms": e["measured_ms_p99"],
            "ratio": e["ratio"], "serving_overhead_ms": e["serving_overhead_ms"],
            "predicted_with_overhead_ms": e["predicted_with_overhead_ms"],
            "ratio_with_overhead": e["ratio_with_overhead"], "overhead": o,
            "done": e["requests_done"], "sent": e["requests_sent"],
            "failure": data["failure"], "stages": data["stages"]}


def _f(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--pool-target", type=float, default=POOL_TARGET,
                        help="utilisation per replica of the cloud-pool case (default %(default)s)")
    args = parser.parse_args(argv)
    pool = next(k for k in CASES if k.startswith("cloud pool"))
    CASES[pool] = (*CASES[pool][:4], args.pool_target, *CASES[pool][5:])
    results = []
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        for name, case in CASES.items():
            if args.only and args.only not in name:
                continue
            results.append(run_case(Path(tmp), name, case, args.duration))
            if args.json:  # after every case, before the table: a slip must not lose a run
                args.json.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    return 0


def _ok(run: dict | None) -> bool:
    return bool(run) and run["ratio_with_overhead"] is not None and run["ratio_with_overhead"] <= LIMIT


def print_table(results: list[dict]) -> None:
    """Two rows a case: the plan on isolated profiles, then the plan on the rows its run measured
    while serving; the verdict by measured p95 / (plan p95 + serving overhead)."""
    print(f"{'case':<34} {'profiles':<9} {'plan p95':>9} {'overhead':>9} {'pred p95':>9} {'meas p50':>9} "
          f"{'meas p95':>9} {'meas p99':>9} {'ratio':>6} {'ratio+oh':>8}  verdict")
    for r in results:
        if r.get("error"):
            print(f"{r['case']:<34} did not run: {r['error']}")
        for kind in ("isolated", "served"):
            x = r.get(kind)
            if x is None:
                continue
            print(f"{r['case'] if kind == 'isolated' else '':<34} {kind:<9} {x['predicted_p95_ms']:>9.2f} "
                  f"{x['serving_overhead_ms'] or 0:>9.2f} {x['predicted_with_overhead_ms'] or 0:>9.2f} "
                  f"{x['measured_p50_ms'] or 0:>9.2f} {x['measured_p95_ms'] or 0:>9.2f} {x['measured_p99_ms'] or 0:>9.2f} "
                  f"{x['ratio'] or 0:>6.3f} {x['ratio_with_overhead'] or 0:>8.3f}  {'ok' if _ok(x) else 'MISS'} "
                  f"({x['done']}/{x['sent']} done{'; ' + x['failure'] if x['failure'] else ''})")
            o, m = x["overhead"], x["machine"]
            print(f"{'':<44} overhead: {o['hops']} hop(s) x p95 {_f(o['hop_ms_p95'])} ms (hop p50 "
                  f"{_f(o['hop_ms_p50'])}); dispatcher {100 * (o['dispatcher_core_share'] or 0):.0f} % of a core; "
                  f"others' CPU {100 * m['others_cpu_share_before']:.0f} % before, "
                  f"{100 * m['others_cpu_share_during']:.0f} % during")
            print(f"{'':<44} {x['scale']}" + (f"; rate: {r['served_rate']}" if kind == "served" else ""))
            print(f"{'':<44} compute p50 predicted/measured: " + ", ".join(
                f"{s['stage']} {_f(s['predicted']['compute_ms_p50'])}/{_f(s['measured']['compute_ms_p50'])}"
                for s in x["stages"]) + "; utilisation: " + ", ".join(
                f"{k} {_f(v[0])}/{_f(v[1])}" for k, v in x["utilisation"].items()))
    n = len(results)
    print(f"within +{LIMIT - 1:.0%} of plan + serving overhead (or below it): "
          f"{sum(_ok(r.get('isolated')) for r in results)}/{n} planned on isolated profiles, "
          f"{sum(_ok(r.get('served')) for r in results)}/{n} planned on the rows measured while serving "
          f"(against the plan alone: {sum(_alone(r.get('isolated')) for r in results)}/{n} and "
          f"{sum(_alone(r.get('served')) for r in results)}/{n})")


def _alone(run: dict | None) -> bool:
    return bool(run) and run["ratio"] is not None and run["ratio"] <= LIMIT


if __name__ == "__main__":
    sys.exit(main())
