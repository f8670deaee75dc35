"""Latency estimates for hardware classes that cannot be measured here.

Two estimators live here:

- `calibrated_rows` (what `profile_pieces` uses): the roofline of `profiles/calibration.py` over
  the piece's fused kernels (FLOPs and bytes from the TIR), with efficiencies fitted on rows
  measured on this machine for CPU classes and assumed per class kind for GPUs and NPUs. Each
  row's `error_band` is multiplicative (the latency lies within estimate ÷ (1 + band) …
  estimate × (1 + band)): for CPU classes the 90th percentile of the leave-one-model-out errors
  of fitted models of the piece's size (`RuntimeParams.band_for`, times a transfer band on
  another instruction set), for GPU/NPU the assumed ×/÷ 2 — but an accelerator modelled from its
  published facts (on-chip parameter memory, host link: the Coral Edge TPU,
  `profiles.estimate_hardware.ON_CHIP`) gets its own model and band. `memory_mb` is the local
  figure at the same batch; p95 is the estimated p50 times the local p95/p50 ratio. Every batch
  measured locally gets a row.
- `estimate_rows` (the PROVISIONAL roofline-ratio guess below), kept as the fallback for a row
  the calibration has no parameters for (e.g. a `tvm-tuned` row before tuning is calibrated).

The provisional estimator: a measured local row is scaled by how much weaker (or stronger) the
other class is, on whichever of compute and memory bandwidth is worse for it:

    latency(hw) = latency(local, same runtime)
                  * max(local.peak_gflops / hw.peak_gflops,
                        local.mem_bandwidth_gbs / hw.mem_bandwidth_gbs)
                  + hw.overhead_ms

This is a roofline-ratio guess, not a model of the kernels: it assumes the piece reaches the same
fraction of peak on both machines, which is false across architectures (and very false from an
untuned CPU build to a GPU). Every estimated row therefore carries `source="estimated"` and
`error_band=0.5` (±50 %, itself a guess). A calibrated estimator (per-kernel FLOPs and bytes from
the compiled TIR, efficiency factors fitted on measured hardware, an error band from the fit)
replaces it where it can (see `calibrated_rows`).

Which runtimes are estimated: provisionally, GPU classes get `tvm` only; classes without a TVM
target (NPUs such as Inferentia) get `onnxruntime` only; CPU classes get both. The calibrated
estimator adds every CPU fit on CPU classes and, on GPU classes, ONNX Runtime's CUDA (fp32) and
TensorRT (fp16) providers, `onnxruntime-cuda` and `onnxruntime-trt`, whose rows take the local
`onnxruntime` row as their template (batch, memory, p95/p50 ratio). `memory_mb` is the local
figure unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from profiles.calibration import Calibration, predict_ms
from profiles.estimate_model import estimate_band
from profiles.hardware import HardwareClass
from profiles.kernel_stats import KernelStats
from profiles.table import (
    BATCH,
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    LATENCY_MS_P95,
    PIECE,
    PROFILE_COLUMNS,
    RUNTIME,
    SOURCE,
)

ESTIMATED = "estimated"
PROVISIONAL_ERROR_BAND = 0.5


# a GPU runtime's estimated rows are built from this local runtime's rows (their batches, memory
# and p95/p50 ratio; the latency comes from the roofline)
TEMPLATE_RUNTIME = {"onnxruntime-cuda": "onnxruntime", "onnxruntime-trt": "onnxruntime"}


def estimated_runtimes(hardware: HardwareClass) -> tuple[str, ...]:
    """The runtimes the provisional `estimate_rows` covers on a class (see the module docstring);
    `calibrated_runtimes` adds those only the calibrated estimator covers."""
    if hardware.tvm_target is None:
        return ("onnxruntime",)
    if hardware.kind == "gpu":
        return ("tvm",)
    return ("tvm", "onnxruntime")


def calibrated_runtimes(hardware: HardwareClass, calibration: Calibration) -> set[str]:
    """The runtimes `calibrated_rows` estimates on a class: the provisional ones, every CPU fit
    on a CPU class, ONNX Runtime's CUDA and TensorRT providers on a GPU class."""
    runtimes = set(estimated_runtimes(hardware))
    if hardware.kind == "cpu":
        runtimes |= set(calibration.cpu)
    if hardware.kind == "gpu":
        runtimes |= set(TEMPLATE_RUNTIME)
    return runtimes


def _templates(rows: pd.DataFrame, runtimes: set[str]) -> list[dict]:
    """Each local row of a runtime in `runtimes`, and a copy of it per GPU runtime it templates."""
    out = []
    for row in rows.to_dict("records"):
        if row[RUNTIME] in runtimes:
            out.append(row)
        out += [{**row, RUNTIME: gpu} for gpu, template in TEMPLATE_RUNTIME.items()
                if gpu in runtimes and row[RUNTIME] == template]
    return out


def scale_factor(local: HardwareClass, hardware: HardwareClass) -> float:
    """How many times longer a piece takes on `hardware` than here: the worse of the ratios."""
    return max(local.peak_gflops / hardware.peak_gflops,
               local.mem_bandwidth_gbs / hardware.mem_bandwidth_gbs)


def estimate_rows(local_rows: pd.DataFrame, local: HardwareClass,
                  hardware: HardwareClass) -> pd.DataFrame:
    """Estimated ProfileTable rows for `hardware` from the measured rows of `local`.

    `local_rows` is a ProfileTable; rows of other hardware classes are ignored."""
    rows = pd.DataFrame(_templates(local_rows[local_rows[HARDWARE] == local.name],
                                   set(estimated_runtimes(hardware))), columns=PROFILE_COLUMNS)
    factor = scale_factor(local, hardware)
    rows[HARDWARE] = hardware.name
    rows[LATENCY_MS_P50] = rows[LATENCY_MS_P50] * factor + hardware.overhead_ms
    rows[LATENCY_MS_P95] = rows[LATENCY_MS_P95] * factor + hardware.overhead_ms
    rows[SOURCE] = ESTIMATED
    rows[ERROR_BAND] = PROVISIONAL_ERROR_BAND
    return rows[PROFILE_COLUMNS].reset_index(drop=True)


def calibrated_rows(local_rows: pd.DataFrame, local: HardwareClass, hardware: HardwareClass,
                    stats: Mapping[str, KernelStats], calibration: Calibration,
                    io_bytes: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Estimated ProfileTable rows for `hardware` from the roofline of each piece's kernels.

    `local_rows`: the measured rows of `local` (they give the batches, memory and p95/p50 ratio);
    `stats[piece]`: the piece's kernel statistics at any batch (scaled to each row's batch);
    `io_bytes[piece]`: its input and output bytes at batch 1, where known (they cross an
    accelerator's host link; a piece without them is charged a 224x224x3 image's).
    A row the calibration has no parameters for (or a piece without statistics) falls back to
    the provisional `estimate_rows` for that row (which has none for ONNX Runtime's GPU providers:
    such a row is left out)."""
    runtimes = calibrated_runtimes(hardware, calibration)
    out = []
    for row in _templates(local_rows[local_rows[HARDWARE] == local.name], runtimes):
        params = calibration.params(hardware, row[RUNTIME])
        piece_stats = stats.get(row[PIECE])
        if params is None or piece_stats is None:
            out.append(estimate_rows(pd.DataFrame([row], columns=PROFILE_COLUMNS), local, hardware))
            continue
        p50 = predict_ms(piece_stats, int(row[BATCH]), hardware, params,
                         io_bytes=(io_bytes or {}).get(row[PIECE]))
        band = estimate_band(params, hardware, piece_stats.at_batch(int(row[BATCH])).flops)
        ratio = row[LATENCY_MS_P95] / row[LATENCY_MS_P50] if row[LATENCY_MS_P50] > 0 else 1.0
        out.append(pd.DataFrame([{**row, HARDWARE: hardware.name, LATENCY_MS_P50: p50,
                                  LATENCY_MS_P95: p50 * max(ratio, 1.0), SOURCE: ESTIMATED,
                                  ERROR_BAND: band}], columns=PROFILE_COLUMNS))
    if not out:
        return local_rows.iloc[0:0][PROFILE_COLUMNS].reset_index(drop=True)
    return pd.concat(out, ignore_index=True)[PROFILE_COLUMNS]
