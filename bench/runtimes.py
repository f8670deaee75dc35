"""Every runtime side by side on this machine, and which one the planner picks.

    python bench/runtimes.py                         # zoo (+ exported, with torch) models; measure (cached)
    python bench/runtimes.py --models resnet18 --no-plan
    python bench/runtimes.py --fit                   # also fit OpenVINO's (and ORT's) estimator efficiencies
    python bench/runtimes.py --tune 2m               # first tune (MetaSchedule) each model not tuned yet

Per model: p50 at batch 1 for untuned TVM, tuned TVM, ONNX Runtime and OpenVINO, and the runtime
the planner picks for that model on this machine's hardware class.

- `tvm`, `onnxruntime`, `openvino` are measured through `profile_pieces` with the default
  `MeasureConfig` and the user's profile cache, so a second run measures nothing.
- `tvm-tuned` is the cached row `placement tune` (or `bench/tuning_bench.py --keep-database`)
  stored; "not tuned" where there is none. `--tune 2m` first tunes every model without one for
  that search budget each (`profiles.tuning.tune_piece`, the class's shared database, so trials of
  earlier runs are kept) and the cell says the budget and trials; a cached row's budget is not
  stored with it. Tune on a quiet machine: the search measures candidates on these cores.
- OpenVINO runs with PERFORMANCE_HINT=LATENCY, INFERENCE_NUM_THREADS = the class's cores, f32
  (`profiles/openvino_adapter.py`); ONNX Runtime with intra-op threads = the class's cores.
- "planner picks": a one-model spec (1 site, cloud candidates = the AWS offer(s) of this class in
  us-east-1) solved with objective latency through the Workspace, which keeps every runtime not
  dominated on (p50, p95, memory); the Plan's placement names the runtime chosen.
- No GPU is measured here; GPU runtimes are not in this table.

`--fit` fits the calibrated estimator's efficiencies for OpenVINO and ONNX Runtime on the rows
measured (batches `--fit-batches`), prints the leave-one-model-family-out errors and the
`RuntimeParams` (for `profiles/calibration.py`'s `FITTED_CPU`); `--save-calibration` stores them in
the profile store, where `profile_pieces` finds them: OpenVINO rows are then estimated on the other
CPU classes. The built-in OpenVINO fit (`FITTED_CPU["openvino"]`) was made with
`--no-tvm --no-plan --fit` on a quiet machine (docs/runtimes-and-devices.md).

The machine this runs on may be shared: other processes' load shows up in every column (the
measurements say nothing about it). Run it on a quiet machine for numbers to quote.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from pricing import table as ot
from profiles.cache import ProfileCache
from profiles.calibration import (
    Calibration,
    Sample,
    calibrate,
    current_calibration,
    leave_one_model_out,
    save_calibration,
)
from profiles.hardware import local_hardware
from profiles.measure import MeasureConfig
from profiles.openvino_adapter import openvino_available, openvino_version
from profiles.profiler import PieceSource, piece_kernel_stats, profile_pieces
from profiles.table import BATCH, LATENCY_MS_P50, PIECE, RUNTIME
from profiles.tvm_adapter import tvm_version
from profiles.zoo import ZOO_MODELS, zoo_input_shapes, zoo_model_path

FAMILIES = {"resnet18": "resnet18", "torch-resnet18": "resnet18",
            "mobilenetv2": "mobilenet", "torch-mobilenet": "mobilenet",
            "transformer-encoder": "transformer", "torch-transformer": "transformer"}


def sources(names: list[str] | None, console: Console) -> list[PieceSource]:
    from profiles.exported import ExportUnavailableError, available_models, export_model

    out = [PieceSource(piece=n, onnx_path=zoo_model_path(n), input_shapes=zoo_input_shapes(n))
           for n in ZOO_MODELS if not names or n in names]
    exported = available_models()
    if not exported:
        console.log("torch is not installed: no exported models (pip install '.\\[export]')")
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


def measure(pieces, runtimes_batches: dict[str, tuple[int, ...]], cache: ProfileCache,
            console: Console):
    reports = {}
    for runtime, batches in runtimes_batches.items():
        t0 = time.perf_counter()

        def progress(e, runtime=runtime):
            if e.step in ("measured", "failed", "cached", "contended"):
                console.log(f"{e.piece} {e.runtime}: {e.step} ({e.done}/{e.total})")

        reports[runtime] = profile_pieces(pieces, [], runtimes=(runtime,), config=MeasureConfig(),
                                          cache=cache, batches=batches, on_progress=progress)
        console.log(f"{runtime}: {time.perf_counter() - t0:.0f} s")
    return reports


def tuned_rows(pieces) -> dict[str, dict]:
    """The cached tvm-tuned row at batch 1 per piece (what `placement tune` stored)."""
    from profiles.providers import default_row_providers

    found = {}
    for provider in default_row_providers():
        try:
            rows = provider(pieces, [local_hardware().name])
        except Exception as exc:  # noqa: BLE001 - report it and go on
            print(f"warning: row provider {getattr(provider, '__name__', provider)}: {exc}", file=sys.stderr)
            continue
        for r in rows or []:
            if r.get(RUNTIME) == "tvm-tuned" and int(r.get(BATCH, 1)) == 1:
                found[r[PIECE]] = r
    return found


def tune(pieces, reports, budget_s: float, console: Console) -> dict[str, str]:
    """Tune each piece without a cached tvm-tuned row for `budget_s` of search; {piece: what it
    got}. Pieces untuned TVM could not import are skipped (tuning imports them the same way)."""
    from profiles.tuning import format_duration, tune_piece

    done = {}
    have = tuned_rows(pieces)
    tvm = reports.get("tvm")
    for source in pieces:
        name = source.piece
        if name in have:
            continue
        if tvm is not None and any(p.piece == name for p in tvm.problems):
            console.log(f"{name}: not tuned (untuned TVM failed on it)")
            continue
        t0 = time.monotonic()
        try:
            result = tune_piece(source, local_hardware(), budget_s, config=MeasureConfig())
        except Exception as exc:  # noqa: BLE001 - a model that fails is said, the others go on
            console.log(f"{name}: tuning failed: {exc}")
            continue
        done[name] = f"{format_duration(budget_s)}, {result.trials_run} trials"
        console.log(f"{name}: tuned {result.measurement.latency_ms_p50:.2f} ms after {result.trials_run} "
                    f"trials ({format_duration(result.search_s)} search, "
                    f"{format_duration(time.monotonic() - t0)} in all)")
    return done


def planner_pick(source: PieceSource, reports, tuned: dict | None = None) -> tuple[str, str]:
    """(runtime, alternatives) the planner chooses for one model on this machine's class, from
    the rows measured above (batch 1; nothing is profiled again)."""
    import pandas as pd

    from placement.api import Workspace
    from placement.spec import parse_spec
    from profiles.table import HARDWARE

    hw = local_hardware().name
    tables = [r.table for r in reports.values() if len(r.table)]
    if tuned:  # the cached tvm-tuned row (`tuned_rows`)
        tables.append(pd.DataFrame([tuned]))
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    rows = rows[(rows[PIECE] == source.piece) & (rows[HARDWARE] == hw) & (rows[BATCH] == 1)]
    if rows.empty:
        return "-", "no rows measured"
    spec = parse_spec({
        "name": f"bench-{source.piece}",
        "models": [{"name": source.piece, "onnx": str(source.onnx_path),
                    "inputs": {k: list(v) for k, v in source.input_shapes.items()}}],
        "dataflow": [{"from": "source", "to": source.piece}, {"from": source.piece, "to": "sink"}],
        "load": {"sites": 1, "rate_per_site_rps": 0.5},
        "slo": {"latency_ms": 60000, "percentile": 95},
        "monthly_budget_usd": 100000,
        "hardware": {"cloud": [{"provider": "aws", "regions": ["us-east-1"]}]},
        "network": {"uplink_mbps": 100, "downlink_mbps": 100, "rtt_ms": {"us-east-1": 20}},
        "solver": {"time_limit_s": 10},
    }, origin="bench")
    ws = Workspace(spec, profiles_table=rows.reset_index(drop=True))
    offers = ws.offers_table
    ws.offers_table = offers[(offers[ot.TIER] == "cloud") & (offers[ot.HARDWARE] == hw)]
    if ws.offers_table.empty:
        return "-", f"no AWS offer of class {hw}"
    outcome = ws.plan(objective="latency", analyse=False)
    placement = outcome.plan.placements[0] if outcome.plan.placements else None
    if placement is None:
        return "-", outcome.plan.status
    alts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(placement.runtime_alternatives_ms_p95.items(),
                                                        key=lambda kv: kv[1]))
    return placement.runtime, alts


def runtime_table(pieces, reports, plan: bool, console: Console, tuned_here: dict | None = None) -> Table:
    hw = local_hardware()
    table = Table(title=f"p50 ms at batch 1 on {hw.name} (this machine, {os.cpu_count()} CPUs, shared "
                        f"with other work; load average at start {os.getloadavg()[0]:.1f}): TVM "
                        f"{tvm_version()} untuned / tuned (MetaSchedule; budget where tuned in this run), ONNX Runtime, OpenVINO "
                        f"{openvino_version()}")
    for column in ("model", "tvm", "tvm-tuned", "onnxruntime", "openvino", "ov/ort",
                   "ov vs ort max|d| rel", "planner picks", "p95 ms per runtime (plan)"):
        table.add_column(column, justify="left" if column in ("model", "planner picks") else "right")
    tuned = tuned_rows(pieces)
    tuned_here = tuned_here or {}
    for source in pieces:
        name = source.piece
        cell = {}
        for runtime, report in reports.items():
            m = report.batch_measurements.get((name, runtime, 1))
            problem = next((p for p in report.problems if p.piece == name), None)
            cell[runtime] = (f"{m.latency_ms_p50:.2f}" if m else
                             f"failed ({problem.error_type})" if problem else "-")
        ov = reports.get("openvino")
        ort = reports.get("onnxruntime")
        ov_m = ov.batch_measurements.get((name, "openvino", 1)) if ov else None
        ort_m = ort.batch_measurements.get((name, "onnxruntime", 1)) if ort else None
        pick, alts = planner_pick(source, reports, tuned.get(name)) if plan else ("-", "--no-plan")
        table.add_row(
            name, cell.get("tvm", "-"),
            (f"{float(tuned[name][LATENCY_MS_P50]):.2f}" + (f" ({tuned_here[name]})" if name in tuned_here else "")
             if name in tuned else "not tuned"),
            cell.get("onnxruntime", "-"), cell.get("openvino", "-"),
            f"{ov_m.latency_ms_p50 / ort_m.latency_ms_p50:.2f}x" if ov_m and ort_m else "-",
            f"{ov_m.max_rel_diff_vs_ort:.1e}" if ov_m and ov_m.max_rel_diff_vs_ort is not None else "-",
            pick, alts)
    return table


def fit(pieces, reports, cache: ProfileCache, console: Console, save: bool = False) -> None:
    stats = piece_kernel_stats(pieces, cache)
    samples = [Sample(piece, runtime, batch, m.latency_ms_p50, stats[piece])
               for runtime in ("onnxruntime", "openvino") if runtime in reports
               for (piece, rt, batch), m in reports[runtime].batch_measurements.items()
               if rt == runtime and piece in stats]
    hw = local_hardware()
    for runtime in sorted({s.runtime for s in samples}):
        loo = leave_one_model_out(samples, hw, runtime, FAMILIES)
        table = Table(title=f"{runtime}: leave-one-model-family-out estimate vs measured p50 on {hw.name}")
        for column in ("model", "batch", "measured ms", "estimated ms", "error"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for r in sorted(loo.rows, key=lambda r: (r["model"], r["batch"])):
            table.add_row(r["model"], str(r["batch"]), f"{r['measured_ms']:.2f}",
                          f"{r['predicted_ms']:.2f}", f"{r['rel_error']:+.0%}")
        console.print(table)
        console.log(f"{runtime}: median |LOO error| {loo.median_error:.0%}, p90 {loo.p90_error:.0%}")
    fitted = calibrate(samples, hw, FAMILIES)
    for runtime, p in fitted.items():
        console.print(f"    {runtime!r}: RuntimeParams.model_validate({p.model_dump()!r}),")
    if save:  # the stored calibration is what profile_pieces estimates with (built-in otherwise)
        current = current_calibration(cache.store)
        save_calibration(Calibration(cpu={**current.cpu, **fitted}, fitted_on=f"{hw.name} (bench/runtimes.py)"),
                         cache.store)
        console.log("calibration saved to the profile store: "
                    f"{', '.join(sorted(fitted))} now estimated from this fit on other CPU classes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="only these (zoo or exported names)")
    parser.add_argument("--no-tvm", action="store_true", help="skip untuned TVM (slow to compile)")
    parser.add_argument("--no-plan", action="store_true", help="skip the planner's pick")
    parser.add_argument("--fit", action="store_true", help="fit OpenVINO's estimator efficiencies")
    parser.add_argument("--fit-batches", default="1,2,4", help="ORT/OpenVINO batches for --fit")
    parser.add_argument("--save-calibration", action="store_true",
                        help="with --fit: store the fit (merged over the current calibration) for "
                             "profile_pieces; do it on a quiet machine")
    parser.add_argument("--tune", default=None, metavar="BUDGET",
                        help="first tune each model without a tvm-tuned row for this search budget (90s, 2m)")
    args = parser.parse_args()
    console = Console(width=220)
    pieces = sources(args.models, console)
    cache = ProfileCache()
    fit_batches = tuple(int(b) for b in args.fit_batches.split(",")) if args.fit else (1,)
    wanted = {"onnxruntime": fit_batches}
    if openvino_available():
        wanted["openvino"] = fit_batches
    else:
        console.log("openvino is not installed: no OpenVINO column (pip install openvino)")
    if not args.no_tvm:
        wanted["tvm"] = (1,)
    console.log(f"load average {os.getloadavg()}: other work on this machine slows every runtime")
    reports = measure(pieces, wanted, cache, console)
    tuned_here = {}
    if args.tune:
        from profiles.tuning import parse_budget

        tuned_here = tune(pieces, reports, parse_budget(args.tune), console)
    console.print(runtime_table(pieces, reports, not args.no_plan, console, tuned_here))
    if args.fit:
        fit(pieces, reports, cache, console, save=args.save_calibration)


if __name__ == "__main__":
    main()
