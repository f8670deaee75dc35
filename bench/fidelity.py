"""How well do the plan's latencies predict a running system? Six local plans on this machine
(`placement verify`, docs/verify.md): a chain, the same chain with Poisson arrivals, a fan-out,
everything on the site device, a cloud pool with several replicas near the utilisation cap, and a
split model. Each is planned against this machine's offers (edge device and cloud offer
`this-machine`) with profiles measured here just before (ONNX Runtime, 1 thread, 200 runs), run
for --duration seconds, and its predicted end-to-end p95 set against the measured one.

    python bench/fidelity.py [--duration 30] [--json out.json]

The predicted side is the plan's p95 plus this harness's serving overhead (its hop through the
dispatcher, timed by probes at the start of each run: hops on the critical path x the hop's p95,
docs/verify.md). A case is "ok" when the measured p95 is within +10 % of plan + overhead, or below
it (the plan sums per-piece p95s and uses an upper-bound wait on a shared device: it is
conservative by construction); the ratio against the plan alone is printed beside it.

A third ratio separates the queueing model from the profile: `ratio (run compute)` is the measured
p95 against the same plan re-evaluated (same options, same scale) with each piece's compute p50 and
p95 as the run measured them plus its hand-off back to the dispatcher (the worker is busy for
both), plus the serving overhead. Where that ratio holds and the plan's does not, the queueing
model was right about the service times it was given, and the miss is the isolated profile's
(back-to-back runs on one warm model) against compute under the run's conditions."""

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
from placement.verify.session import evaluate_options
from profiles import table as pt

ROWS, WIDTH = 32, 1024
POOL_REPLICAS = 3 if (os.cpu_count() or 1) >= 4 else 2


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
                                                        20, 0.65, {"a": f"{CLOUD_OFFER}/r{POOL_REPLICAS}"}, None,
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
    models, edges, arrival, sites, target, placement, split, headroom = case
    folder = root / f"case{len(list(root.iterdir())) + 1}"
    folder.mkdir()
    write_case(folder, models, edges, arrival, sites, 1.0, split)
    offers = write_this_machine_offers(folder / "offers.csv", unit_usd=300.0, hourly_usd=0.05)
    hardware = pd.read_csv(offers)[pt.HARDWARE][0]
    ws0 = api.Workspace.open(folder / "spec.yaml", offers_csv=offers, profiles_csv=None)
    rows = [measure(s, hardware) for s in ws0.pieces]
    pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS).to_csv(folder / "profiles.csv", index=False)
    ws = api.Workspace.open(folder / "spec.yaml", offers_csv=offers, profiles_csv=folder / "profiles.csv")
    on_site = [m for m in models if placement.get(m) == EDGE_OFFER]
    servers = ([on_site] if on_site else []) + [[m] for m in models if m not in on_site]
    if split:
        servers = [[p.piece] for p in ws.pieces if p.piece.startswith(f"{next(iter(models))}@{split}:")]
    replicas = POOL_REPLICAS if any(v.endswith(f"/r{POOL_REPLICAS}") for v in placement.values()) else 1
    rate = round(rate_for(ws, servers, replicas, sites, target), 3)
    write_case(folder, models, edges, arrival, sites, rate, split)
    ws = api.Workspace.open(folder / "spec.yaml", offers_csv=offers, profiles_csv=folder / "profiles.csv")
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
            options = options if reps else [min(options, key=lambda o: o.replicas)]
        assignment[piece] = options[0].id
    plan = evaluate_options(ws, assignment, None)
    result = verify(ws, plan, duration_s=duration, headroom=headroom,
                    on_event=lambda msg: print(f"  [{name}] {msg}", file=sys.stderr))
    e, o = result.data["end_to_end"], result.data["serving_overhead"]
    run_p95 = with_run_compute(ws, folder, assignment, result.data)
    run_pred = run_p95 + (e["serving_overhead_ms"] or 0.0) if run_p95 is not None else None
    return {"case": name, "arrival": arrival, "scale": result.data["scale"]["note"],
            "utilisation": {s["stage"]: (s["predicted"]["utilisation"], s["measured"]["utilisation"])
                            for s in result.data["stages"]},
            "predicted_p95_ms": e["predicted_ms"], "measured_p50_ms": e["measured_ms_p50"],
            "measured_p95_ms": e["measured_ms_p95"], "measured_p99_ms": e["measured_ms_p99"],
            "ratio": e["ratio"], "serving_overhead_ms": e["serving_overhead_ms"],
            "predicted_with_overhead_ms": e["predicted_with_overhead_ms"],
            "ratio_with_overhead": e["ratio_with_overhead"], "overhead": o,
            "run_compute_p95_ms": run_p95, "predicted_run_compute_ms": run_pred,
            "ratio_run_compute": (e["measured_ms_p95"] / run_pred) if run_pred and e["measured_ms_p95"] else None,
            "done": e["requests_done"], "sent": e["requests_sent"],
            "failure": result.data["failure"], "stages": result.data["stages"]}


def with_run_compute(ws, folder: Path, assignment: dict, data: dict) -> float | None:
    """The plan's p95 with the run's own compute: each stage's measured compute p50 / p95 plus its
    hand-off back (p50) replace its profile row; the same options re-evaluated at the run's scale."""
    table = ws.profiles_table.copy()
    for s in data["stages"]:
        m = s["measured"]
        if m["compute_ms_p50"] is None:
            return None
        hand = m["return_ms_p50"] or 0.0
        rows = (table[pt.PIECE] == s["piece"]) & (table[pt.RUNTIME] == s["runtime"]) & (table[pt.BATCH] == s["batch"])
        table.loc[rows, pt.LATENCY_MS_P50] = m["compute_ms_p50"] + hand
        table.loc[rows, pt.LATENCY_MS_P95] = m["compute_ms_p95"] + hand
    path = folder / "profiles-run.csv"
    table.to_csv(path, index=False)
    run_ws = api.Workspace.open(folder / "spec.yaml", offers_csv=folder / "offers.csv", profiles_csv=path)
    scale = data["scale"]
    plan = evaluate_options(run_ws, assignment, api.Overrides(sites=scale["sites"],
                                                              rate_per_site_rps=scale["rate_per_site_rps"]))
    return plan.latency.p95_ms


def _f(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        for name, case in CASES.items():
            if args.only and args.only not in name:
                continue
            results.append(run_case(Path(tmp), name, case, args.duration))
    if args.json:  # before the table: a printing slip must not lose a run
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    return 0


def print_table(results: list[dict]) -> None:
    """The table: verdict by measured p95 / (plan p95 + serving overhead), the plan alone beside it."""
    print(f"{'case':<34} {'plan p95':>9} {'overhead':>9} {'pred p95':>9} {'meas p50':>9} {'meas p95':>9} "
          f"{'meas p99':>9} {'ratio':>6} {'ratio+oh':>8} {'run comp':>8}  verdict")
    ok = 0
    for r in results:
        good = r["ratio_with_overhead"] is not None and r["ratio_with_overhead"] <= 1.10
        ok += good
        print(f"{r['case']:<34} {r['predicted_p95_ms']:>9.2f} {r['serving_overhead_ms'] or 0:>9.2f} "
              f"{r['predicted_with_overhead_ms'] or 0:>9.2f} {r['measured_p50_ms'] or 0:>9.2f} "
              f"{r['measured_p95_ms'] or 0:>9.2f} {r['measured_p99_ms'] or 0:>9.2f} {r['ratio'] or 0:>6.3f} "
              f"{r['ratio_with_overhead'] or 0:>8.3f} {r.get('ratio_run_compute') or 0:>8.3f}  "
              f"{'ok' if good else 'MISS'} ({r['done']}/{r['sent']} done{'; ' + r['failure'] if r['failure'] else ''})")
        o = r["overhead"]
        print(f"{'':<34} overhead: {o['hops']} hop(s) x p95 {_f(o['hop_ms_p95'])} ms (hop p50 {_f(o['hop_ms_p50'])}, "
              f"{o['probes']} probes); in the run: to a worker p50 {_f(o['run_inbound_ms_p50'])}, back p50 "
              f"{_f(o['run_return_ms_p50'])}, deliveries late p50 {_f(o['late_ms_p50'])} ms, dispatcher "
              f"{100 * (o['dispatcher_core_share'] or 0):.0f} % of a core")
        print(f"{'':<34} {r['scale']}")
        if r.get("predicted_run_compute_ms") is not None:
            print(f"{'':<34} with the run's compute (+ hand-off): plan p95 {_f(r['run_compute_p95_ms'])} + overhead "
                  f"= {_f(r['predicted_run_compute_ms'])} ms; compute p50 predicted/in the run: " + ", ".join(
                      f"{s['stage']} {_f(s['predicted']['compute_ms_p50'])}/{_f(s['measured']['compute_ms_p50'])}"
                      for s in r["stages"]))
        print(f"{'':<34} utilisation predicted/measured: " + ", ".join(
            f"{k} {_f(v[0])}/{_f(v[1])}" for k, v in r['utilisation'].items()))
    print(f"{ok}/{len(results)} within +10 % of plan + serving overhead (or below it); "
          f"{sum(r['ratio'] is not None and r['ratio'] <= 1.10 for r in results)}/{len(results)} against the plan alone; "
          f"{sum((r.get('ratio_run_compute') or 9) <= 1.10 for r in results)}/{len(results)} against the plan "
          "re-evaluated with the run's compute (+ overhead): the queueing model given the service times the run saw")


if __name__ == "__main__":
    sys.exit(main())
