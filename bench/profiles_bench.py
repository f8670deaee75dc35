"""Runtimes side by side, and how well the calibrated estimator predicts a model it never saw.

    python bench/profiles_bench.py                       # zoo + exported models, measure (cached), fit, report
    python bench/profiles_bench.py --save-calibration    # also store the fit for `profile_pieces`
    python bench/profiles_bench.py --models resnet18 torch-gru --tvm-batches 1 --ort-batches 1
    python bench/profiles_bench.py --tvm-batches "" --runs 3   # ONNX Runtime only, best of 3 runs

For each zoo model (profiles/zoo.py), each real exported model (profiles/exported.py; needs
torch) and the small real exports of tests/data (`SMALL_PIECES`: they pin the fixed costs) it
prints the p50 latency under TVM untuned, TVM tuned (when a `tvm-tuned` row for it is in
the cache, found through `profiles.providers.default_row_providers()`; otherwise "not tuned") and ONNX
Runtime, as ratios to ONNX Runtime, with TVM's agreement with ONNX Runtime. Then it fits the
estimator's efficiencies on every measured row (all batches) and reports leave-one-model-out
errors: each model family (the zoo's and torch's ResNet-18 are one family, and so on) is left out
in turn, the efficiencies are refitted on the rest, and the left-out rows are predicted.

Measurements go through `profile_pieces` with the default `MeasureConfig` and the user's profile
cache, so a second run measures nothing, and the rows serve later `placement profile` runs too;
`--runs N` measures ONNX Runtime N-1 more times in fresh caches and fits each row's least
disturbed run (on a shared machine a small model's p50 varies up to 5x with the neighbours).
A cold run took 6-7 minutes on 2 cores (untuned TVM is slow, batch 2 doubles it).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from rich.console import Console
from rich.table import Table

from profiles.cache import ProfileCache
from profiles.calibration import (
    Calibration,
    Sample,
    calibrate,
    default_calibration,
    leave_one_model_out,
    save_calibration,
)
from profiles.hardware import local_hardware
from profiles.measure import MeasureConfig
from profiles.paths import cache_root
from profiles.profiler import (
    PieceSource,
    piece_kernel_stats,
    profile_pieces,
)
from profiles.table import BATCH, LATENCY_MS_P50, PIECE, RUNTIME
from profiles.tvm_adapter import tvm_version
from profiles.zoo import ZOO_MODELS, zoo_input_shapes, zoo_model_path

# Model families: a model is left out of the fit together with its relatives.
FAMILIES = {"resnet18": "resnet18", "torch-resnet18": "resnet18",
            "mobilenetv2": "mobilenet", "torch-mobilenet": "mobilenet",
            "transformer-encoder": "transformer", "torch-transformer": "transformer",
            "chain-embed6": "cropnet", "chain-attr6": "cropnet", "dyn-batch": "cropnet"}
# (the fixed-cost probes are each their own family: leaving one out asks whether the fixed costs
# fitted on the other chain lengths and the small exports predict it)

# Small real exports (10 µs to 1 ms each here) and the fixed-cost probes: without them the fit
# cannot tell a runtime's fixed costs per call and per kernel apart from its throughput (issue 15
# item 5).
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SMALL_PIECES = {
    "chain-detector": ("real/chain-detector.onnx", {"input": [1, 3, 96, 96]}),
    "chain-embed6": ("real/chain-embed6.onnx", {"input": [6, 3, 32, 32]}),
    "chain-attr6": ("real/chain-attr6.onnx", {"input": [6, 3, 32, 32]}),
    "dyn-batch": ("real/dyn-batch.onnx", {"input": [1, 3, 32, 32]}),
    "no-batch": ("real/no-batch.onnx", {"input": [64]}),
    "paddle-cnn": ("foreign/paddle-cnn-o11.onnx", {"x": [1, 3, 32, 32]}),
    "paddle-mlp": ("foreign/paddle-mlp-o13.onnx", {"tokens": [1, 16, 32]}),
    "tf-cnn": ("foreign/tf-cnn-o13.onnx", {"input": [1, 32, 32, 3]}),
    "tf-mobile": ("foreign/tf-mobile-o17.onnx", {"image": [1, 48, 48, 3]}),
}


PROBE_WIDTH = 8


def fixed_cost_probes(directory: Path, lengths=(1, 8, 32)) -> list[PieceSource]:
    """Chains of `n` tiny MatMuls ([1, 8] x [8, 8]): no work to speak of, one kernel each for
    TVM's fusion and ONNX Runtime alike, so their latency is the runtime's fixed costs — per call
    (the 1-chain) and per kernel run on the calling thread (the slope to the 32-chain)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = []
    rng = np.random.default_rng(0)
    for n in lengths:
        inits = [numpy_helper.from_array((rng.standard_normal((PROBE_WIDTH, PROBE_WIDTH)) * 0.3)
                                         .astype(np.float32), f"w{i}") for i in range(n)]
        nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"w{i}"],
                                  ["y" if i == n - 1 else f"h{i + 1}"]) for i in range(n)]
        graph = helper.make_graph(nodes, f"probe{n}",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, PROBE_WIDTH])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, PROBE_WIDTH])],
                                  inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        path = directory / f"probe-matmul{n}.onnx"
        onnx.save(model, str(path))
        out.append(PieceSource(piece=f"probe-matmul{n}", onnx_path=path, input_shapes={"x": [1, PROBE_WIDTH]}))
    return out


def sources(names: list[str] | None, console: Console, small: bool = False) -> list[PieceSource]:
    from profiles.exported import ExportUnavailableError, available_models, export_model

    out = [PieceSource(piece=n, onnx_path=zoo_model_path(n), input_shapes=zoo_input_shapes(n))
           for n in ZOO_MODELS if not names or n in names]
    if small:
        out += [PieceSource(piece=n, onnx_path=DATA / path, input_shapes=shapes)
                for n, (path, shapes) in SMALL_PIECES.items() if not names or n in names]
        probes = cache_root() / "probes"
        probes.mkdir(parents=True, exist_ok=True)
        out += [p for p in fixed_cost_probes(probes) if not names or p.piece in names]
    exported = available_models()
    if not exported:
        console.log("torch is not installed: no exported models (pip install torch==2.13.0)")
    for name in exported:
        if names and name not in names:
            continue
        try:
            e = export_model(name)
        except ExportUnavailableError as exc:
            console.log(str(exc))
            continue
        out.append(PieceSource(piece=name, onnx_path=e.path, input_shapes=e.input_shapes))
    return out


def _parse_batches(text: str) -> tuple[int, ...]:
    return tuple(int(b) for b in text.split(",") if b.strip())


def measure(pieces, tvm_batches, ort_batches, cache: ProfileCache, console: Console, runs: int = 1):
    """Reports per runtime; with `runs` > 1, ONNX Runtime is measured again that many times in
    fresh caches (the fit keeps each row's least disturbed run: `samples_from`)."""
    import tempfile

    config = MeasureConfig()
    reports = []
    rounds = [("onnxruntime", ort_batches)] * runs + [("tvm", tvm_batches)]
    for i, (runtime, batches) in enumerate(rounds):
        if not batches:
            continue
        t0 = time.perf_counter()

        def progress(e, runtime=runtime):
            if e.step in ("measured", "failed", "cached"):
                console.log(f"{e.piece} {e.runtime}: {e.step} ({e.done}/{e.total})")

        with tempfile.TemporaryDirectory() as fresh:
            run_cache = cache if i == 0 or runtime == "tvm" else ProfileCache(Path(fresh))
            reports.append(profile_pieces(pieces, [], runtimes=(runtime,), config=config, cache=run_cache,
                                          batches=batches, on_progress=progress))
        console.log(f"{runtime}: {time.perf_counter() - t0:.0f} s")
    return reports


def tuned_rows(pieces) -> dict[str, float]:
    """p50 of a tvm-tuned row at batch 1 per piece, from the default row providers."""
    from profiles.providers import default_row_providers

    found = {}
    for provider in default_row_providers():  # cached tvm-tuned (and measured-rpc) rows
        try:
            rows = provider(pieces, [local_hardware().name])
        except Exception as exc:  # noqa: BLE001 - report it and go on with the other providers
            print(f"warning: row provider {getattr(provider, '__name__', provider)}: {exc}", file=sys.stderr)
            continue
        for r in rows or []:
            if r.get(RUNTIME) == "tvm-tuned" and int(r.get(BATCH, 1)) == 1:
                found[r[PIECE]] = float(r[LATENCY_MS_P50])
    return found


def runtime_table(pieces, reports, stats, console: Console) -> Table:
    hw = local_hardware()
    table = Table(title=f"p50 ms at batch 1 on {hw.name}: TVM {tvm_version()} untuned, tuned, "
                        "ONNX Runtime (ratios: / ORT; above 1 = slower than ORT)")
    for column in ("model", "GFLOP", "TVM", "TVM tuned", "ORT", "TVM/ORT", "tuned/ORT",
                   "TVM vs ORT max|d|", "rel"):
        table.add_column(column, justify="left" if column == "model" else "right")
    measurements = {}
    for report in reports:
        measurements.update(report.batch_measurements)
    problems = {(p.piece, p.runtime): p for report in reports for p in report.problems}
    tuned = tuned_rows(pieces)
    for source in pieces:
        name = source.piece
        ort = measurements.get((name, "onnxruntime", 1))
        tvm = measurements.get((name, "tvm", 1))
        ort_ms = ort.latency_ms_p50 if ort else None
        tvm_cell = f"{tvm.latency_ms_p50:.1f}" if tvm else (
            f"failed ({problems[(name, 'tvm')].error_type})" if (name, "tvm") in problems else "-")
        tuned_ms = tuned.get(name)
        table.add_row(
            name, f"{stats[name].flops / 1e9:.2f}" if name in stats else "-", tvm_cell,
            f"{tuned_ms:.1f}" if tuned_ms else "not tuned",
            f"{ort_ms:.2f}" if ort_ms else "-",
            f"{tvm.latency_ms_p50 / ort_ms:.1f}x" if tvm and ort_ms else "-",
            f"{tuned_ms / ort_ms:.1f}x" if tuned_ms and ort_ms else "-",
            f"{tvm.max_abs_diff_vs_ort:.1e}" if tvm and tvm.max_abs_diff_vs_ort is not None else "-",
            f"{tvm.max_rel_diff_vs_ort:.1e}" if tvm and tvm.max_rel_diff_vs_ort is not None else "-",
        )
        if (name, "tvm") in problems and tvm is None:
            console.log(f"{name}: TVM: {problems[(name, 'tvm')].message.splitlines()[0]}")
    return table


def samples_from(reports, stats) -> list[Sample]:
    """One sample per (piece, runtime, batch): of several runs, the least disturbed one (the
    lowest share of the CPU other processes took while it was measured, then the fastest) — on a
    shared machine a 20 µs model measured while a neighbour runs can read 5x slower."""
    best: dict[tuple, object] = {}
    for report in reports:
        for key, m in report.batch_measurements.items():
            rank = (m.others_cpu_share if m.others_cpu_share is not None else 1.0, m.latency_ms_p50)
            if key[0] in stats and (key not in best or rank < best[key][0]):
                best[key] = (rank, m)
    return [Sample(piece, runtime, batch, m.latency_ms_p50, stats[piece])
            for (piece, runtime, batch), (_, m) in best.items()]


def loo_tables(samples, console: Console) -> tuple[list[Table], dict]:
    hw = local_hardware()
    tables, summary = [], {}
    for runtime in sorted({s.runtime for s in samples}):
        loo = leave_one_model_out(samples, hw, runtime, FAMILIES)
        table = Table(title=f"{runtime}: leave-one-model-out estimate vs measured p50 on {hw.name}")
        for column in ("model", "batch", "measured ms", "estimated ms", "error"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for r in sorted(loo.rows, key=lambda r: (r["model"], r["batch"])):
            table.add_row(r["model"], str(r["batch"]), f"{r['measured_ms']:.2f}",
                          f"{r['predicted_ms']:.3f}", f"{math.exp(r['log_error']):.2f}x")
        tables.append(table)
        summary[runtime] = loo
    return tables, summary


def summary_table(summary) -> Table:
    table = Table(title="estimator error, leave one model family out (target: median <= 25%)")
    for column in ("runtime", "models", "rows", "median error (factor - 1)", "p90 (error band ×/÷ 1+b)",
                   "worst model (median)"):
        table.add_column(column)
    for runtime, loo in summary.items():
        per_model = loo.per_model()
        worst = max(per_model, key=per_model.get)
        table.add_row(runtime, str(len(per_model)), str(len(loo.rows)), f"{loo.median_error:.0%}",
                      f"{loo.p90_error:.0%}", f"{worst} {per_model[worst]:.0%}")
    return table


def params_table(fitted) -> Table:
    table = Table(title="fitted efficiencies (fraction of the usable peak) and fixed costs")
    for column in ("runtime", "conv", "dwconv", "matmul", "other", "bandwidth", "launch us",
                   "call us", "error band ×/÷"):
        table.add_column(column, justify="right")
    for runtime, p in fitted.items():
        table.add_row(runtime, *(f"{p.efficiency[k]:.3f}" for k in ("conv", "dwconv", "matmul",
                                                                     "other")),
                      f"{p.bandwidth_efficiency:.3f}", f"{p.launch_ms * 1000:.1f}",
                      f"{p.call_ms * 1000:.1f}", f"{1 + p.error_band:.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="only these (zoo or exported names)")
    parser.add_argument("--tvm-batches", default="1,2", help="batches measured under TVM")
    parser.add_argument("--ort-batches", default="1,2,4", help="batches measured under ORT")
    parser.add_argument("--cache", type=Path, default=None,
                        help="profile cache directory (default: the user's; another one "
                             "re-measures everything)")
    parser.add_argument("--save-calibration", action="store_true",
                        help="store the fit in the profile store (used by profile_pieces)")
    parser.add_argument("--no-small", action="store_true",
                        help="leave out the small exports of tests/data (then the fixed costs are guesses)")
    parser.add_argument("--runs", type=int, default=1,
                        help="measure ONNX Runtime this many times; each row keeps its least disturbed run")
    args = parser.parse_args()
    console = Console(width=200)
    pieces = sources(args.models, console, small=not args.no_small)
    cache = ProfileCache(args.cache) if args.cache else ProfileCache()
    reports = measure(pieces, _parse_batches(args.tvm_batches), _parse_batches(args.ort_batches),
                      cache, console, runs=args.runs)
    t0 = time.perf_counter()
    stats = piece_kernel_stats(pieces, cache)
    console.log(f"kernel statistics: {time.perf_counter() - t0:.0f} s "
                f"({', '.join(f'{n}: {s.method}' for n, s in stats.items())})")
    console.print(runtime_table(pieces, reports, stats, console))
    samples = samples_from(reports, stats)
    tables, summary = loo_tables(samples, console)
    for table in tables:
        console.print(table)
    console.print(summary_table(summary))
    fitted = calibrate(samples, local_hardware(), FAMILIES)
    console.print(params_table(fitted))
    console.print("FITTED_CPU = {")
    for runtime, p in fitted.items():
        console.print(f"    {runtime!r}: RuntimeParams.model_validate({p.model_dump()!r}),")
    console.print("}")
    if args.save_calibration:
        builtin = default_calibration()
        save_calibration(Calibration(cpu={**builtin.cpu, **fitted},
                                     fitted_on=f"{local_hardware().name} (bench)"),
                         ProfileCache().store)
        console.log("calibration saved to the profile store")
    errors = [abs(r["log_error"]) for loo in summary.values() for r in loo.rows]
    console.log(f"all runtimes: median LOO error {math.exp(np.median(errors)):.2f}x either way")


if __name__ == "__main__":
    main()
