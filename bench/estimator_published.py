"""The estimator against published latencies: how far off, and does a per-family factor help?

    python bench/estimator_published.py                  # docs/published_latency.csv
    python bench/estimator_published.py --table other.csv

For each published row (source, device, runtime, model, batch, precision — every row cites its
source URL; see docs/published_latency.csv) it prints the estimator's p50 for that model on the
row's hardware class and the ratio estimate / published:

- CPU classes: the fastest of the calibrated runtimes (ONNX Runtime, OpenVINO) — what the planner
  would plan with. The published runtime is often another one (ncnn); the column says so.
- NPU classes: the assumed NPU efficiencies (`profiles.calibration.ASSUMED`).

Errors are multiplicative: a factor 2 is "2x too slow" or "2x too fast" alike. A row is "in band"
when published lies in [estimate ÷ (1 + band), estimate × (1 + band)], band = the row's error band.

Then leave-one-out per hardware family (arm / x86 / npu): each row is predicted by the estimate
times a correction factor fitted on the *other* rows of its family (geometric mean of published /
estimated); a family with a single row has nothing to fit and is reported uncorrected.

Honest limits: the table is small (7 rows), several rows are proxies (same cores and clock on
another SoC — the `match` column says which), and ncnn is not a runtime the estimator models.
The numbers measure how far the roofline is from published figures, not a validated accuracy.
Nothing here is measured: it needs the zoo models' kernel statistics only (cached, TVM child).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from profiles.calibration import ASSUMED, current_calibration, predict_ms
from profiles.hardware import get_hardware
from profiles.profiler import PieceSource, piece_kernel_stats
from profiles.zoo import zoo_input_shapes, zoo_model_path

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "docs" / "published_latency.csv"
WITHIN = 0.30  # "within ±30 %": a factor of at most 1.3 either way


def family(hardware) -> str:
    if hardware.kind != "cpu":
        return hardware.kind
    return "arm" if hardware.arch == "aarch64" else "x86"


def estimate(stats, row, calibration) -> tuple[float, float, str]:
    """(p50 ms, error band, which estimate) for one published row."""
    hw = get_hardware(row["hardware"])
    batch = int(row["batch"])
    if hw.kind == "cpu":
        found = []
        for runtime in sorted(calibration.cpu):
            params = calibration.params(hw, runtime)
            if params is not None and not params.single_thread:
                found.append((predict_ms(stats, batch, hw, params), params.error_band, runtime))
        return min(found)
    params = ASSUMED[(hw.kind, "onnxruntime")]
    return predict_ms(stats, batch, hw, params), params.error_band, f"{hw.kind} assumed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    console = Console(width=200)
    with args.table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    models = sorted({r["model"] for r in rows})
    sources = [PieceSource(piece=m, onnx_path=zoo_model_path(m), input_shapes=zoo_input_shapes(m)) for m in models]
    stats = piece_kernel_stats(sources)
    calibration = current_calibration()

    results = []
    for r in rows:
        est, band, how = estimate(stats[r["model"]], r, calibration)
        published = float(r["latency_ms"])
        results.append({**r, "estimate_ms": est, "band": band, "how": how,
                        "log_err": math.log(est / published),
                        "family": family(get_hardware(r["hardware"]))})

    # leave one out per family: a correction factor from the family's other rows
    for res in results:
        others = [o for o in results if o["family"] == res["family"] and o is not res]
        if others:
            c = math.exp(-sum(o["log_err"] for o in others) / len(others))
            res["loo_ms"] = res["estimate_ms"] * c
        else:
            res["loo_ms"] = None

    table = Table(title=f"estimate vs published p50, batch 1 ({args.table.name}; calibration: "
                        f"{calibration.fitted_on})")
    for column in ("hardware", "device (published)", "runtime", "model", "prec", "published ms",
                   "estimate ms", "estimated with", "est/pub", "in band", "LOO-corrected ms", "LOO est/pub"):
        table.add_column(column, justify="left" if column in ("hardware", "device (published)", "runtime",
                                                               "model", "estimated with") else "right")
    for res in results:
        published = float(res["latency_ms"])
        ratio = res["estimate_ms"] / published
        in_band = res["estimate_ms"] / (1 + res["band"]) <= published <= res["estimate_ms"] * (1 + res["band"])
        table.add_row(res["hardware"], res["device"], res["runtime"], res["model"], res["precision"],
                      f"{published:.2f}", f"{res['estimate_ms']:.2f}", res["how"], f"{ratio:.2f}x",
                      "yes" if in_band else "no",
                      "-" if res["loo_ms"] is None else f"{res['loo_ms']:.2f}",
                      "-" if res["loo_ms"] is None else f"{res['loo_ms'] / published:.2f}x")
        res["in_band"] = in_band
    console.print(table)

    summary = Table(title="per family: median factor off (either way), share within ±30 %, share in band")
    for column in ("family", "rows", "median factor", "within ±30%", "in band (×/÷)",
                   "LOO median factor", "LOO within ±30%"):
        summary.add_column(column, justify="left" if column == "family" else "right")
    for fam in sorted({r["family"] for r in results}):
        group = [r for r in results if r["family"] == fam]
        factors = sorted(math.exp(abs(r["log_err"])) for r in group)
        loo = sorted(math.exp(abs(math.log(r["loo_ms"] / float(r["latency_ms"]))))
                     for r in group if r["loo_ms"] is not None)
        summary.add_row(
            fam, str(len(group)), f"{factors[len(factors) // 2]:.2f}",
            f"{sum(f <= 1 + WITHIN for f in factors)}/{len(group)}",
            f"{sum(r['in_band'] for r in group)}/{len(group)}",
            f"{loo[len(loo) // 2]:.2f}" if loo else "-",
            f"{sum(f <= 1 + WITHIN for f in loo)}/{len(loo)}" if loo else "-")
    console.print(summary)


if __name__ == "__main__":
    main()
