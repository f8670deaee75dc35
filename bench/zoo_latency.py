"""TVM (untuned) against ONNX Runtime on the zoo models, on this machine.

    python bench/zoo_latency.py                    # all zoo models, then the cold demo profile
    python bench/zoo_latency.py --models resnet18 --no-cold

Prints, per model: preparation time, TVM compile time, p50/p95 of both runtimes and the ratio
TVM / ONNX Runtime (above 1: TVM is slower), TVM's agreement with ONNX Runtime, the memory
figures. Then times a cold `profile_pieces` of resnet18 + mobilenetv2 (both runtimes, empty
cache), which is what the product demo does first: it must stay under 3 minutes on 2 cores.
All measurements use the default `MeasureConfig`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from profiles.cache import ProfileCache
from profiles.hardware import local_hardware
from profiles.measure import MeasureConfig
from profiles.onnx_prep import prepare_onnx
from profiles.ort_adapter import measure_onnxruntime
from profiles.profiler import PieceSource, profile_pieces
from profiles.tvm_adapter import TvmError, measure_tvm, tvm_version
from profiles.zoo import ZOO_MODELS, zoo_input_shapes, zoo_model_path

COLD_DEMO_MODELS = ("resnet18", "mobilenetv2")


def bench_models(models, config: MeasureConfig, console: Console) -> Table:
    hardware = local_hardware()
    table = Table(title=f"TVM {tvm_version()} untuned vs ONNX Runtime on {hardware.name} "
                        f"(p50/p95 ms over n samples)")
    for column in ("model", "prep s", "compile s", "TVM p50", "TVM p95", "n", "ORT p50",
                   "ORT p95", "n", "TVM/ORT p50", "max |diff|", "TVM MB", "ORT MB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in models:
        shapes = zoo_input_shapes(name)
        t0 = time.perf_counter()
        model = prepare_onnx(zoo_model_path(name), shapes)
        prep_s = time.perf_counter() - t0
        console.log(f"{name}: prepared in {prep_s:.1f} s; measuring ONNX Runtime")
        ort = measure_onnxruntime(model, shapes, config, threads=hardware.cores)
        console.log(f"{name}: ORT p50 {ort.latency_ms_p50:.2f} ms; compiling and measuring TVM")
        try:
            tvm = measure_tvm(model, shapes, hardware, config)
        except TvmError as exc:
            console.log(f"{name}: TVM failed: {exc}")
            table.add_row(name, f"{prep_s:.1f}", "failed", "-", "-", "-",
                          f"{ort.latency_ms_p50:.2f}", f"{ort.latency_ms_p95:.2f}",
                          str(ort.n_samples), "-", "-", "-", f"{ort.memory_mb:.0f}")
            continue
        console.log(f"{name}: TVM p50 {tvm.latency_ms_p50:.1f} ms (compile {tvm.compile_s:.1f} s, "
                    f"measure {tvm.measure_s:.1f} s)")
        table.add_row(
            name, f"{prep_s:.1f}", f"{tvm.compile_s:.1f}",
            f"{tvm.latency_ms_p50:.2f}", f"{tvm.latency_ms_p95:.2f}", str(tvm.n_samples),
            f"{ort.latency_ms_p50:.2f}", f"{ort.latency_ms_p95:.2f}", str(ort.n_samples),
            f"{tvm.latency_ms_p50 / ort.latency_ms_p50:.1f}x", f"{tvm.max_abs_diff_vs_ort:.1e}",
            f"{tvm.memory_mb:.0f}", f"{ort.memory_mb:.0f}",
        )
    return table


def cold_profile(config: MeasureConfig, console: Console) -> float:
    """Seconds for profile_pieces of the demo models with an empty cache (zoo files prebuilt)."""
    pieces = [PieceSource(piece=n, onnx_path=zoo_model_path(n), input_shapes=zoo_input_shapes(n))
              for n in COLD_DEMO_MODELS]
    with tempfile.TemporaryDirectory(prefix="cold-profile-") as tmp:
        cache = ProfileCache(Path(tmp))
        t0 = time.perf_counter()
        report = profile_pieces(pieces, [], config=config, cache=cache,
                                on_progress=lambda e: console.log(
                                    f"  [{e.done}/{e.total}] {e.piece} {e.runtime}: {e.step}"))
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        profile_pieces(pieces, [], config=config, cache=cache)
        warm_s = time.perf_counter() - t0
    console.print(report.table.to_string(index=False))
    for problem in report.problems:
        console.print(f"problem: {problem}")
    console.print(f"cold profile of {' + '.join(COLD_DEMO_MODELS)} (both runtimes): {cold_s:.1f} s; "
                  f"second run from the cache: {warm_s:.2f} s")
    return cold_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO_MODELS), choices=ZOO_MODELS)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold demo profile")
    parser.add_argument("--no-table", action="store_true", help="only the cold demo profile")
    args = parser.parse_args()
    console = Console(width=200)
    config = MeasureConfig()
    console.print(f"MeasureConfig: {config.model_dump()}")
    console.print(f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs "
                  "(other work on the machine inflates every figure, ONNX Runtime's most)")
    for name in dict.fromkeys([*args.models, *COLD_DEMO_MODELS]):
        zoo_model_path(name)  # generate outside the timings
    if not args.no_table:
        console.print(bench_models(args.models, config, console))
    if not args.no_cold:
        cold_profile(config, console)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
