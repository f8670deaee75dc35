"""Untuned TVM vs MetaSchedule-tuned TVM vs ONNX Runtime on zoo models, for a stated budget.

    python bench/tuning_bench.py --models resnet18 --budget 6m
    python bench/tuning_bench.py --models resnet18 mobilenetv2 --budget 20m --keep-database

Per model: the tuning budget and the time the search took (tasks, trials), the latency p50/p95
of untuned TVM, tuned TVM and ONNX Runtime with the default `MeasureConfig`, and the ratios
untuned/tuned (the tuning speed-up) and tuned/ORT (above 1: tuned TVM is still slower). The
budget is split over the models like `placement tune` does (each gets an equal share of what is
left). By default the run uses a fresh cache and tuning database in a temp dir, so the search
starts from nothing and the times are honest; `--keep-database` tunes into the user's database
(and reuses what it holds).
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

from profiles.hardware import local_hardware
from profiles.measure import MeasureConfig
from profiles.onnx_prep import prepare_onnx
from profiles.ort_adapter import measure_onnxruntime
from profiles.profiler import PieceSource
from profiles.tuning import format_duration, parse_budget, tune_piece
from profiles.tvm_adapter import measure_tvm, tvm_version
from profiles.zoo import ZOO_MODELS, zoo_input_shapes, zoo_model_path


def bench(models: dict[str, Path], budget_s: float, config: MeasureConfig,
          console: Console) -> Table:
    """`models`: zoo name -> ONNX file."""
    hardware = local_hardware()
    table = Table(title=f"TVM {tvm_version()} untuned vs tuned (MetaSchedule) vs ONNX Runtime on "
                        f"{hardware.name}; budget {format_duration(budget_s)} for "
                        f"{len(models)} model(s); p50/p95 ms")
    for column in ("model", "budget", "search", "tasks", "trials", "trials/task", "s/trial",
                   "TVM p50", "TVM p95", "tuned p50", "tuned p95", "ORT p50", "ORT p95",
                   "untuned/tuned", "tuned/ORT", "tuned max rel diff"):
        table.add_column(column, justify="left" if column == "model" else "right")
    tuning_spent = 0.0  # only the tuning counts against the budget, not the baselines
    for i, name in enumerate(models):
        shapes = zoo_input_shapes(name)
        source = PieceSource(piece=name, onnx_path=models[name], input_shapes=shapes)
        model = prepare_onnx(source.onnx_path, shapes)
        console.log(f"{name}: measuring ONNX Runtime and untuned TVM")
        ort = measure_onnxruntime(model, shapes, config, threads=hardware.cores)
        untuned = measure_tvm(model, shapes, hardware, config)
        share = (budget_s - tuning_spent) / (len(models) - i)
        console.log(f"{name}: ORT {ort.latency_ms_p50:.2f} ms, TVM untuned "
                    f"{untuned.latency_ms_p50:.1f} ms; tuning for {format_duration(share)}")
        last = {"t": 0.0}

        def log(p, name=name, last=last):
            if p.phase in ("plan", "stopped", "compile", "done") or (
                    p.phase == "tune" and time.monotonic() - last["t"] > 30):
                last["t"] = time.monotonic()
                est = f", est. {p.estimated_ms:.2f} ms" if p.estimated_ms is not None else ""
                console.log(f"  {name} {p.phase}: tasks {p.tasks_done}/{p.tasks_total}, trials "
                            f"{p.trials_done}/{p.trials_planned}{est}, "
                            f"{format_duration(p.time_left_s)} left")

        t0 = time.monotonic()
        result = tune_piece(source, hardware, share, config=config, on_progress=log)
        wall = time.monotonic() - t0
        tuning_spent += result.search_s
        tuned = result.measurement
        console.log(f"{name}: tuned {tuned.latency_ms_p50:.2f} ms after {result.trials_run} trials "
                    f"({format_duration(result.search_s)} search, {format_duration(wall)} with "
                    f"compile and measure)")
        table.add_row(
            name, format_duration(share),
            format_duration(result.search_s) + (" (stopped)" if result.stopped_by_budget else ""),
            str(len(result.tasks)), str(result.trials_run), str(result.trials_per_task),
            f"{result.search_s / max(result.trials_run, 1):.2f}",
            f"{untuned.latency_ms_p50:.2f}", f"{untuned.latency_ms_p95:.2f}",
            f"{tuned.latency_ms_p50:.2f}", f"{tuned.latency_ms_p95:.2f}",
            f"{ort.latency_ms_p50:.2f}", f"{ort.latency_ms_p95:.2f}",
            f"{untuned.latency_ms_p50 / tuned.latency_ms_p50:.1f}x",
            f"{tuned.latency_ms_p50 / ort.latency_ms_p50:.2f}x",
            "-" if tuned.max_rel_diff_vs_ort is None else f"{tuned.max_rel_diff_vs_ort:.1e}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18"], choices=ZOO_MODELS)
    parser.add_argument("--budget", default="6m", help="search time for all models: 90s, 6m, 1h")
    parser.add_argument("--keep-database", action="store_true",
                        help="tune into the user's cache and database instead of a fresh temp dir")
    args = parser.parse_args()
    budget_s = parse_budget(args.budget)
    console = Console(width=220)
    config = MeasureConfig()
    models = {n: zoo_model_path(n) for n in args.models}  # generated outside the timings
    console.print(f"MeasureConfig: {config.model_dump()}")
    console.print(f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs "
                  "(other work on the machine slows the search and inflates every latency)")
    if args.keep_database:
        console.print(bench(models, budget_s, config, console))
    else:
        with tempfile.TemporaryDirectory(prefix="tuning-bench-") as tmp:
            os.environ["PLACEMENT_CACHE_DIR"] = tmp
            console.print(bench(models, budget_s, config, console))
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
