"""PROVISIONAL latency estimates for hardware classes that cannot be measured here.

A measured local row is scaled by how much weaker (or stronger) the other class is, on whichever
of compute and memory bandwidth is worse for it:

    latency(hw) = latency(local, same runtime)
                  * max(local.peak_gflops / hw.peak_gflops,
                        local.mem_bandwidth_gbs / hw.mem_bandwidth_gbs)
                  + hw.overhead_ms

This is a roofline-ratio guess, not a model of the kernels: it assumes the piece reaches the same
fraction of peak on both machines, which is false across architectures (and very false from an
untuned CPU build to a GPU). Every estimated row therefore carries `source="estimated"` and
`error_band=0.5` (±50 %, itself a guess). A calibrated estimator (per-kernel FLOPs and bytes from
the compiled TIR, efficiency factors fitted on measured hardware, an error band from the fit)
replaces this one in a later issue.

Which runtimes are estimated: GPU classes get `tvm` only (ONNX Runtime's CUDA provider is not
measured anywhere yet); classes without a TVM target (NPUs such as Inferentia) get `onnxruntime`
only; CPU classes get both. `memory_mb` is the local figure unchanged.
"""

from __future__ import annotations

import pandas as pd

from profiles.hardware import HardwareClass
from profiles.table import (
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    LATENCY_MS_P95,
    PROFILE_COLUMNS,
    RUNTIME,
    SOURCE,
)

ESTIMATED = "estimated"
PROVISIONAL_ERROR_BAND = 0.5


def estimated_runtimes(hardware: HardwareClass) -> tuple[str, ...]:
    """The runtimes a class gets estimated rows for (see the module docstring)."""
    if hardware.tvm_target is None:
        return ("onnxruntime",)
    if hardware.kind == "gpu":
        return ("tvm",)
    return ("tvm", "onnxruntime")


def scale_factor(local: HardwareClass, hardware: HardwareClass) -> float:
    """How many times longer a piece takes on `hardware` than here: the worse of the ratios."""
    return max(local.peak_gflops / hardware.peak_gflops,
               local.mem_bandwidth_gbs / hardware.mem_bandwidth_gbs)


def estimate_rows(local_rows: pd.DataFrame, local: HardwareClass,
                  hardware: HardwareClass) -> pd.DataFrame:
    """Estimated ProfileTable rows for `hardware` from the measured rows of `local`.

    `local_rows` is a ProfileTable; rows of other hardware classes are ignored."""
    rows = local_rows[(local_rows[HARDWARE] == local.name)
                      & local_rows[RUNTIME].isin(estimated_runtimes(hardware))].copy()
    factor = scale_factor(local, hardware)
    rows[HARDWARE] = hardware.name
    rows[LATENCY_MS_P50] = rows[LATENCY_MS_P50] * factor + hardware.overhead_ms
    rows[LATENCY_MS_P95] = rows[LATENCY_MS_P95] * factor + hardware.overhead_ms
    rows[SOURCE] = ESTIMATED
    rows[ERROR_BAND] = PROVISIONAL_ERROR_BAND
    return rows[PROFILE_COLUMNS].reset_index(drop=True)
