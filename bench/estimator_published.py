"""The estimator against published latencies: how far off, per hardware family, leave-one-model-out.

    python bench/estimator_published.py                  # docs/published_latency.csv
    python bench/estimator_published.py --table other.csv

For each published row (source, device, runtime, model, batch, precision, threads — every row
cites its source; see docs/published_latency.csv) it prints the estimator's p50 for that model on
the row's hardware class *run on the row's thread count* (a 1-thread row on a 4-core board is
estimated on one core of it: the same cores and caches, one core's peak) and the ratio
estimate / published:

- CPU classes: the fastest of the calibrated multi-threaded runtimes (ONNX Runtime, OpenVINO) —
  what the planner would plan with, as shipped (`Calibration.params`: on another instruction set
  the fit is transferred with the per-family compute efficiency, `profiles.calibration`). The
  published runtime is often another one (ncnn); the column says so.
- GPU classes: ONNX Runtime's TensorRT provider (`onnxruntime-trt`, fp16) for an fp16 row, its
  CUDA provider (`onnxruntime-cuda`, fp32) for an fp32 row (`profiles.calibration.GPU_ORT`). The
  published GPU rows are TensorRT (fp32 rows stand in for the CUDA provider: no citable ONNX
  Runtime figure was found); leave-one-model-out refits each runtime's compute scale and per-launch
  cost on the family's rows of the other models; `--fit-gpu` prints the fit on all rows.
- NPU classes: the assumed NPU efficiencies (`profiles.calibration.ASSUMED`), except the Coral
  Edge TPU, estimated from its published facts (`profiles.estimate_hardware.EDGETPU`: on-chip
  parameter memory, host link, an efficiency and per-call cost from Coral's latencies of models
  that are not in the table) with the piece's input and output bytes crossing the link.

A model named `name@S` is the zoo's `name` at an S x S input (Coral publishes ResNet-50 at
299x299): the zoo graph with its input's spatial dims rewritten, kept in the cache dir.

Errors are multiplicative: a factor 2 is "2x too slow" or "2x too fast" alike. A row is "in band"
when published lies in [estimate ÷ (1 + band), estimate × (1 + band)], band = the row's error band
(`RuntimeParams.band_for`: the residuals of models of that size, times the transfer band).

Leave-one-model-out per family: on another instruction set than the fit's (Arm), each row is
predicted with the family's compute ratio fitted on its rows *of the other models*, so no row is
corrected by a figure for its own model. On the fit's own instruction set (x86) and for the NPUs
no constant comes from a row of this table (the Edge TPU's come from Coral's figures for other
models), so the leave-one-out prediction is the estimate itself. Then the thread-scaling check: for each device and
model published at two thread counts, the published speed-up beside the estimated one.

Honest limits: the table is small, most rows are ncnn (not a runtime the estimator models; its
Winograd 3x3 convolutions and fp16 storage make it faster than ONNX Runtime on ResNets), several
rows are proxies (same cores and clock on another SoC — the `match` column says which). The
numbers measure how far the roofline is from published figures, not a validated accuracy.
Nothing here is measured: it needs the zoo models' kernel statistics only (cached, TVM child).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from profiles.calibration import (
    ASSUMED,
    GPU_ORT,
    FamilyTransfer,
    current_calibration,
    family_of,
    predict_ms,
    transferred,
)
from profiles.estimate_hardware import on_chip_facts
from profiles.estimate_model import estimate_band, factor_band, on_chip_parts
from profiles.hardware import get_hardware
from profiles.paths import atomic_write_bytes, cache_root
from profiles.profiler import PieceSource, piece_kernel_stats
from profiles.zoo import zoo_input_shapes, zoo_model_path

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "docs" / "published_latency.csv"
WITHIN = 0.30  # "within ±30 %": a factor of at most 1.3 either way
GPU_RUNTIME = {"fp16": "onnxruntime-trt", "fp32": "onnxruntime-cuda"}  # by the row's precision


def gpu_runtime(row: dict) -> str:
    return GPU_RUNTIME[row["precision"]]


def scaled(params, scale: float, launch_ms: float):
    """GPU runtime params with every compute efficiency times `scale` and this launch cost."""
    return params.model_copy(update={"efficiency": {k: v * scale for k, v in params.efficiency.items()},
                                     "launch_ms": launch_ms})


def family(hardware, fitted_arch: str, row: dict | None = None) -> str:
    """npu; gpu/<runtime>; the fit's own instruction set ("x86_64"); else instruction
    set/microarchitecture."""
    if hardware.kind == "gpu" and row is not None:
        return f"gpu/{gpu_runtime(row)}"
    if hardware.kind != "cpu":
        return hardware.kind
    return hardware.arch if hardware.arch == fitted_arch else family_of(hardware)[0]


def model_source(model: str) -> PieceSource:
    """The zoo model `model`, or for `name@S` the zoo's `name` with an S x S input."""
    name, _, size = model.partition("@")
    path, shapes = zoo_model_path(name), zoo_input_shapes(name)
    if not size:
        return PieceSource(piece=model, onnx_path=path, input_shapes=shapes)
    variant = cache_root() / "published" / f"{model}.onnx"
    if not variant.exists() or variant.stat().st_mtime < path.stat().st_mtime:
        graph = onnx.load(path)
        for dim in graph.graph.input[0].type.tensor_type.shape.dim[2:]:
            dim.dim_value = int(size)
        del graph.graph.value_info[:]
        atomic_write_bytes(variant, graph.SerializeToString())
    first = next(iter(shapes))
    return PieceSource(piece=model, onnx_path=variant,
                       input_shapes={**shapes, first: [*shapes[first][:2], int(size), int(size)]})


def io_bytes(source: PieceSource) -> float:
    """Bytes of the model's inputs and outputs at batch 1, in the ONNX model's types."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(source.onnx_path, load_external_data=False)).graph
    total = 0.0
    for value in [*graph.input, *graph.output]:
        tensor = value.type.tensor_type
        if value.name in source.input_shapes:
            dims = source.input_shapes[value.name]
        else:
            dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim]
        if value.name in source.input_shapes or any(d.HasField("dim_value") for d in tensor.shape.dim):
            size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).itemsize
            total += float(np.prod(dims)) * size
    return total


def on_threads(hardware, threads: int):
    """The class restricted to `threads` of its cores (a CPU row published at fewer threads)."""
    if hardware.kind != "cpu" or threads >= hardware.cores:
        return hardware
    return hardware.model_copy(update={
        "name": f"{hardware.name}@{threads}t", "cores": threads,
        "peak_gflops": hardware.peak_gflops * threads / hardware.cores})


def estimate(stats, row, calibration, ratio: float | None = None,
             io: float | None = None, gpu_fit: tuple[float, float] | None = None) -> tuple[float, float, str]:
    """(p50 ms, error band, which estimate) for one published row; `ratio`: on another
    instruction set, this family compute ratio instead of the shipped one; `io`: the model's
    input and output bytes at batch 1 (they cross an accelerator's host link); `gpu_fit`: on a
    GPU, (compute scale, launch ms) applied to the shipped runtime's params."""
    hw = on_threads(get_hardware(row["hardware"]), int(row["threads"] or 1))
    batch = int(row["batch"])
    flops = stats.at_batch(batch).flops
    if hw.kind == "cpu":
        found = []
        for runtime in sorted(calibration.cpu):
            params = calibration.params(hw, runtime)
            if params is not None and ratio is not None and hw.arch != calibration.fitted_arch:
                params = transferred(calibration.cpu[runtime], hw.arch,
                                     FamilyTransfer(compute_ratio=ratio, band=1.0, source="bench"))
            if params is not None and not params.single_thread:
                found.append((predict_ms(stats, batch, hw, params), params.band_for(flops), runtime))
        return min(found)
    if hw.kind == "gpu":
        runtime = gpu_runtime(row)
        params = calibration.params(hw, runtime)
        if gpu_fit is not None:
            params = scaled(params, *gpu_fit)
        return predict_ms(stats, batch, hw, params), params.band_for(flops), runtime
    params = ASSUMED[(hw.kind, "onnxruntime")]
    how = "on-chip facts" if on_chip_facts(hw) is not None else f"{hw.kind} assumed"
    return predict_ms(stats, batch, hw, params, io_bytes=io), estimate_band(params, hw, flops), how


def factor(a: float, b: float) -> float:
    """How far apart, as a factor >= 1 either way."""
    return math.exp(abs(math.log(a / b)))


def in_band(estimate_ms: float, band: float, published: float) -> bool:
    return estimate_ms / (1 + band) <= published <= estimate_ms * (1 + band)


def fit_ratio(rows: list[dict], stats, calibration) -> float:
    """The family compute ratio that best explains `rows` (least squares on log latency)."""
    from scipy.optimize import minimize_scalar

    def loss(log_ratio: float) -> float:
        return sum((math.log(estimate(stats[r["model"]], r, calibration, math.exp(log_ratio))[0]
                             / float(r["latency_ms"]))) ** 2 for r in rows)

    return float(math.exp(minimize_scalar(loss, bounds=(math.log(0.01), 0.0), method="bounded").x))


def fit_gpu(rows: list[dict], stats, calibration) -> tuple[float, float]:
    """(compute scale, launch ms) of a GPU runtime that best explain `rows` (least squares on log
    latency, from the shipped params: a scale of 1 and their launch cost mean "as shipped")."""
    from scipy.optimize import minimize

    start = calibration.params(get_hardware(rows[0]["hardware"]), gpu_runtime(rows[0]))

    def loss(x) -> float:
        fit = (math.exp(x[0]), math.exp(x[1]))
        return sum(math.log(estimate(stats[r["model"]], r, calibration, gpu_fit=fit)[0]
                            / float(r["latency_ms"])) ** 2 for r in rows)

    x = minimize(loss, [0.0, math.log(max(start.launch_ms, 1e-4))], method="Nelder-Mead",
                 options={"xatol": 1e-3, "fatol": 1e-6}).x
    return math.exp(x[0]), math.exp(x[1])


def leave_one_gpu_model_out(results: list[dict], stats, calibration) -> dict[str, dict]:
    """Each GPU row's `loo_ms`: its runtime's scale and launch cost refitted on the family's rows
    of the other models. Returns per family the fit on all its rows and the p90 of LOO errors."""
    fitted = {}
    for fam in sorted({r["family"] for r in results if r["kind"] == "gpu"}):
        group = [r for r in results if r["family"] == fam]
        for res in group:
            others = [o for o in group if o["model"] != res["model"]]
            if len({o["model"] for o in others}) >= 2:  # two parameters: two models at least
                res["loo_ms"] = estimate(stats[res["model"]], res, calibration,
                                         gpu_fit=fit_gpu(others, stats, calibration))[0]
        scale, launch = fit_gpu(group, stats, calibration)
        fitted[fam] = {"scale": scale, "launch_ms": launch, "rows": len(group),
                       "models": len({r["model"] for r in group}),
                       "band": factor_band([math.log(r["loo_ms"] / float(r["latency_ms"])) for r in group])}
    return fitted


def leave_one_model_out(results: list[dict], stats, calibration) -> dict[str, dict]:
    """Each row's `loo_ms`, predicted as the estimator would be without that model's rows.

    On another instruction set than the fit's: the family's (microarchitecture's) compute ratio
    fitted on its rows of the other models. On the fit's own instruction set the estimator uses
    no published figure, so `loo_ms` is the estimate itself; an NPU (assumed efficiencies)
    likewise. Returns the FAMILY_TRANSFER entries these rows support: per microarchitecture the
    ratio on all its rows and the p90 of its LOO errors; per instruction set the ratio on all its
    rows and the p90 of leave-one-microarchitecture-out errors (the fallback's honest band)."""
    fitted = {}
    transfer_rows = [r for r in results if r["kind"] == "cpu" and r["arch"] != calibration.fitted_arch]
    for res in results:
        res["loo_ms"] = res["estimate_ms"]
    for fam in sorted({r["family"] for r in transfer_rows}):
        group = [r for r in transfer_rows if r["family"] == fam]
        for res in group:
            others = [o for o in group if o["model"] != res["model"]]
            if others:
                res["loo_ms"] = estimate(stats[res["model"]], res, calibration,
                                         fit_ratio(others, stats, calibration))[0]
        if len({r["model"] for r in group}) > 1:
            fitted[fam] = {"ratio": fit_ratio(group, stats, calibration), "rows": len(group),
                           "band": factor_band([math.log(r["loo_ms"] / float(r["latency_ms"])) for r in group]),
                           "how": "leave-one-model-out"}
    for arch in sorted({r["arch"] for r in transfer_rows}):
        group = [r for r in transfer_rows if r["arch"] == arch]
        families = sorted({r["family"] for r in group})
        if len(families) < 2:
            continue
        errors = []
        for fam in families:
            ratio = fit_ratio([r for r in group if r["family"] != fam], stats, calibration)
            errors += [math.log(estimate(stats[r["model"]], r, calibration, ratio)[0] / float(r["latency_ms"]))
                       for r in group if r["family"] == fam]
        fitted[arch] = {"ratio": fit_ratio(group, stats, calibration), "rows": len(group),
                        "band": factor_band(errors), "how": "leave-one-microarchitecture-out"}
    return fitted


def rows_table(results, title) -> Table:
    table = Table(title=title)
    for column in ("hardware", "thr", "device (published)", "runtime", "model", "prec", "published ms",
                   "estimate ms", "estimated with", "est/pub", "band ×/÷", "in band", "LOO ms", "LOO est/pub"):
        table.add_column(column, justify="left" if column in ("hardware", "device (published)", "runtime",
                                                               "model", "estimated with") else "right")
    for res in results:
        published = float(res["latency_ms"])
        table.add_row(res["hardware"], res["threads"], res["device"], res["runtime"], res["model"],
                      res["precision"], f"{published:.2f}", f"{res['estimate_ms']:.2f}", res["how"],
                      f"{res['estimate_ms'] / published:.2f}x", f"{1 + res['band']:.2f}",
                      "yes" if res["in_band"] else "no",
                      "-" if res["loo_ms"] is None else f"{res['loo_ms']:.2f}",
                      "-" if res["loo_ms"] is None else f"{res['loo_ms'] / published:.2f}x")
    return table


def summary_table(results) -> Table:
    summary = Table(title="per family: median factor off (either way), share within ±30 %, share in band")
    for column in ("family", "rows", "median factor", "within ±30%", "in band (×/÷)",
                   "LOO median factor", "LOO within ±30%"):
        summary.add_column(column, justify="left" if column == "family" else "right")
    groups = {fam: [r for r in results if r["family"] == fam] for fam in sorted({r["family"] for r in results})}
    for fam, group in [*groups.items(), ("all", results)]:
        factors = sorted(factor(r["estimate_ms"], float(r["latency_ms"])) for r in group)
        loo = sorted(factor(r["loo_ms"], float(r["latency_ms"])) for r in group if r["loo_ms"] is not None)
        summary.add_row(
            fam, str(len(group)), f"{factors[len(factors) // 2]:.2f}",
            f"{sum(f <= 1 + WITHIN for f in factors)}/{len(group)}",
            f"{sum(r['in_band'] for r in group)}/{len(group)}",
            f"{loo[len(loo) // 2]:.2f}" if loo else "-",
            f"{sum(f <= 1 + WITHIN for f in loo)}/{len(loo)}" if loo else "-")
    return summary


def scaling_table(results) -> Table | None:
    """Published vs estimated speed-up where a device and model appear at two thread counts."""
    by: dict[tuple, dict[int, dict]] = {}
    for r in results:
        by.setdefault((r["device"], r["model"], r["hardware"]), {})[int(r["threads"] or 1)] = r
    table = Table(title="thread scaling: speed-up from the fewest to the most threads published")
    for column in ("device", "model", "threads", "published speed-up", "estimated speed-up"):
        table.add_column(column, justify="left" if column in ("device", "model") else "right")
    found = False
    for (device, model, _), rows in sorted(by.items()):
        if len(rows) < 2:
            continue
        lo, hi = min(rows), max(rows)
        found = True
        table.add_row(device, model, f"{lo} -> {hi}",
                      f"{float(rows[lo]['latency_ms']) / float(rows[hi]['latency_ms']):.2f}x",
                      f"{rows[lo]['estimate_ms'] / rows[hi]['estimate_ms']:.2f}x")
    return table if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--fit-family", action="store_true",
                        help="print the FAMILY_TRANSFER entries (profiles/calibration.py) fitted here")
    parser.add_argument("--fit-gpu", action="store_true",
                        help="print the GPU_ORT efficiencies and launch costs (profiles/calibration.py) fitted here")
    args = parser.parse_args()
    console = Console(width=220)
    with args.table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    models = sorted({r["model"] for r in rows})
    sources = [model_source(m) for m in models]
    stats = piece_kernel_stats(sources)
    io = {source.piece: io_bytes(source) for source in sources}
    calibration = current_calibration()

    results = []
    for r in rows:
        est, band, how = estimate(stats[r["model"]], r, calibration, io=io[r["model"]])
        published = float(r["latency_ms"])
        hw = get_hardware(r["hardware"])
        results.append({**r, "estimate_ms": est, "band": band, "how": how, "kind": hw.kind, "arch": hw.arch,
                        "log_err": math.log(est / published), "in_band": in_band(est, band, published),
                        "family": family(hw, calibration.fitted_arch, r)})
    fitted = leave_one_model_out(results, stats, calibration)
    gpu_fitted = leave_one_gpu_model_out(results, stats, calibration)
    console.print(rows_table(results, f"estimate vs published p50, batch 1 ({args.table.name}; "
                                      f"calibration: {calibration.fitted_on})"))
    console.print(summary_table(results))
    scaling = scaling_table(results)
    if scaling is not None:
        console.print(scaling)
    for r in results:
        hw = get_hardware(r["hardware"])
        facts = on_chip_facts(hw)
        if facts is not None:
            parts = on_chip_parts(stats[r["model"]].at_batch(int(r["batch"])), hw, facts,
                                  io[r["model"]] * int(r["batch"]))
            console.print(f"{hw.name} {r['model']}: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
                          + f" = {sum(parts.values()):.2f} ms (published {float(r['latency_ms']):g})")
    for fam, fit in gpu_fitted.items():
        runtime = fam.split("/", 1)[1]
        console.print(f"{fam}: {fit['rows']} rows of {fit['models']} models; fitted on all: compute scale "
                      f"{fit['scale']:.3f} of the shipped efficiencies, launch {fit['launch_ms'] * 1000:.2f} µs "
                      f"(shipped {GPU_ORT[runtime].launch_ms * 1000:.2f} µs); p90 of LOO errors ×/÷ {1 + fit['band']:.2f}")
        if args.fit_gpu:
            effs = {k: round(v * fit["scale"], 3) for k, v in GPU_ORT[runtime].efficiency.items()}
            console.print(f'    "{runtime}": efficiency={effs}, launch_ms={fit["launch_ms"]:.4f}, '
                          f'LOO band {fit["band"]:.2f}')
    for fam, fit in fitted.items():
        console.print(f"{fam}: compute ratio fitted on all {fit['rows']} rows {fit['ratio']:.3f}, "
                      f"transfer band (p90 of {fit['how']} errors) ×/÷ {1 + fit['band']:.2f}")
        if args.fit_family:
            console.print(f'    "{fam}": FamilyTransfer(compute_ratio={fit["ratio"]:.3f}, band={fit["band"]:.2f}, '
                          f'source="fitted on {fit["rows"]} published rows ({fit["how"]} band), '
                          f'{args.table.name}"),')


if __name__ == "__main__":
    main()
