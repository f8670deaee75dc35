"""The calibrated estimator: per-kernel FLOPs and bytes, a roofline, fitted efficiencies.

What a piece costs is read from the program TVM would run, kernel by kernel:

1. **Kernel statistics** (`KernelStats`, in `profiles.kernel_stats`): the prepared ONNX model is
   imported into Relax and put through the passes of `relax.get_pipeline("zero")` (legalize,
   fuse, FuseTIR) — the same fusion `profiles/tvm_adapter.py` compiles (FoldConstant is skipped
   for speed; see `fuse_for_stats`). Every `call_tir` in `main` is one kernel launch: its FLOPs
   come from `tvm.s_tir.analysis.estimate_tir_flops` on the fused PrimFunc (a multiply-add counts
   2), its bytes from the shapes and dtypes of its arguments and results (split into constant
   bytes — weights, which do not grow with the batch — and activation bytes, which do). This
   runs in a child process (TVM compile work can crash). A model TVM cannot import gets the same
   statistics from the ONNX graph itself (`onnx_kernel_stats`, one kernel per node).
2. **Roofline** (`profiles.estimate_model`): per kernel `max(compute, memory)` plus a fixed cost
   per launch, plus a fixed cost per inference; compute over one core's peak × the batch-1
   thread speed-up, memory from cache or DRAM by the cache of the cores used, fixed costs scaled
   by core speed (`profiles.estimate_hardware` has the per-class facts). `kind` is conv, dwconv
   (depthwise: under 40 FLOPs per output element), matmul, other (elementwise, pooling,
   normalisation) or free (reshapes, which the VM turns into views).
3. **Calibration** (`profiles.calibration_fit`): the efficiencies and fixed costs are fitted per
   (hardware kind, runtime) on measured rows — zoo models, exported models and small exported
   pieces measured on this machine — by least squares on log latency, lightly pulled towards a
   prior. Leave-one-model-out errors become each runtime's residuals; a piece's error band is
   the 90th percentile of the residuals of models of its size, as a factor (×/÷).

GPU and NPU classes cannot be measured here, so their efficiencies are **assumed**, per class
kind (stated in `ASSUMED`): untuned-TVM CPU latency is never scaled to a GPU. A CPU class of
another instruction set gets the fit with its compute efficiencies capped and a transfer band
(`Calibration.params`).
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_fit import (  # noqa: F401 - re-exported
    PRIOR_WEIGHT,
    PRIORS,
    LooResult,
    Sample,
    calibrate,
    fit_runtime,
    leave_one_model_out,
)
from profiles.estimate_model import (  # noqa: F401 - re-exported
    RuntimeParams,
    predict_ms,
    roofline_ms,
    usable_peak,
)
from profiles.hardware import HardwareClass

# Kernel statistics live in `profiles.kernel_stats`; these names stay importable from here.
from profiles.kernel_stats import (  # noqa: F401 - re-exported
    KINDS,
    Kernel,
    KernelStats,
    fuse_for_stats,
    kernel_stats_many,
    node_flops,
    onnx_kernel_stats,
    stats_key,
    tensor_shapes,
    tir_kernel_stats,
)

logger = logging.getLogger(__name__)


# --- the calibration in use -------------------------------------------------------------------

# Assumed, not fitted (nothing here can measure them). GPU `tvm` means TVM's CUDA build with
# `tvm.s_tir.dlight` default GPU schedules (DESIGN.md): its matmul rule reaches a modest share of
# the fp32 (non-tensor-core) peak, convolutions (no dlight conv rule; fallback schedule) much
# less; memory-bound kernels about half the DRAM bandwidth; ~5 us per kernel launch. NPU
# `onnxruntime` (e.g. Inferentia through its ONNX path) reaches a fair share of its peak on
# GEMM-like work. The error band (±100 %) says these are rough.
ASSUMED: dict[tuple[str, str], RuntimeParams] = {
    ("gpu", "tvm"): RuntimeParams(
        efficiency={"conv": 0.05, "dwconv": 0.02, "matmul": 0.2, "other": 0.1},
        bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
        source="assumed: dlight default GPU schedules (not measured)"),
    ("npu", "onnxruntime"): RuntimeParams(
        efficiency={"conv": 0.3, "dwconv": 0.05, "matmul": 0.4, "other": 0.05},
        bandwidth_efficiency=0.5, launch_ms=0.01, error_band=1.0,
        source="assumed: NPU through ONNX (not measured)"),
}

# Fitted on x86-zen4-2c (this project's 2-core AMD EPYC Zen 4 machine) by
# `python bench/profiles_bench.py` on 2026-11-25: 4 zoo + 7 exported models, ONNX Runtime at
# batches 1, 2, 4 and untuned TVM at 1, 2 (torch-gru has no TVM rows). Leave-one-family-out
# |error|: ONNX Runtime median 13 %, p90 31 %; TVM median 23 %, p90 78 %.
# A stored calibration (`save_calibration`, `--save-calibration`) replaces these.
FITTED_CPU: dict[str, RuntimeParams] = {
    "onnxruntime": RuntimeParams(
        efficiency={"conv": 0.897, "dwconv": 0.350, "matmul": 0.686, "other": 0.319},
        bandwidth_efficiency=6.81, launch_ms=0.00491, error_band=0.314, median_error=0.130,
        source="fitted on x86-zen4-2c (11 models, 33 rows); error band = p90 of "
               "|leave-one-model-out error|"),
    "tvm": RuntimeParams(
        efficiency={"conv": 0.0195, "dwconv": 0.274, "matmul": 0.0115, "other": 0.100},
        bandwidth_efficiency=1.29, launch_ms=0.00426, error_band=0.777, median_error=0.233,
        source="fitted on x86-zen4-2c (10 models, 20 rows); error band = p90 of "
               "|leave-one-model-out error|", single_thread=True),
}

CALIBRATION_NAME = "cpu"
# 2: thread speed-up, cache-aware bandwidth, per-call cost and multiplicative size bands. A stored
# calibration of an older model means other things by its numbers and is not used.
MODEL_VERSION = 2


class Calibration(BaseModel):
    """Efficiencies per runtime for CPU classes (fitted) and per (kind, runtime) elsewhere."""

    model_config = ConfigDict(frozen=True)

    cpu: dict[str, RuntimeParams]
    fitted_on: str = ""
    fitted_arch: str = "x86_64"
    model_version: int = MODEL_VERSION

    def params(self, hardware: HardwareClass, runtime: str) -> RuntimeParams | None:
        if hardware.kind == "cpu":
            fitted = self.cpu.get(runtime)
            if fitted is None or hardware.arch == self.fitted_arch:
                return fitted
            return _other_arch(fitted, hardware.arch)
        return ASSUMED.get((hardware.kind, runtime))


# A CPU fit does not carry over to another instruction set unchanged: ONNX Runtime's x86 kernels
# (AVX-512 GEMM) reach a larger share of peak than NEON kernels on small Arm cores. Until an Arm
# device is measured (`placement profile --tracker`), a class of another instruction set gets
# the fit with every compute efficiency scaled by the family's `compute_ratio` (the fit's
# relative efficiencies per kernel kind kept: a cap at one level flattened convolutions to the
# depthwise level and made ResNets ~2x slower than MobileNets relative to published figures)
# and a transfer band that multiplies the fit's own band. Both come from published figures
# (docs/published_latency.csv) by `python bench/estimator_published.py --fit-family`: the ratio
# that best explains the family's rows, the band the 90th percentile of its leave-one-model-out
# errors. The published Arm rows are ncnn (no citable ONNX Runtime figure for these models on
# these cores was found): ncnn's Winograd 3x3 convolutions make it faster than ONNX Runtime on
# ResNets, so ONNX Runtime there may be slower than estimated — within the band's upper side.


class FamilyTransfer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    compute_ratio: float = Field(gt=0, le=1, description="fitted efficiencies x this, per kind")
    band: float = Field(gt=0, description="transfer band (multiplicative, LOO p90)")
    source: str


FAMILY_TRANSFER: dict[str, FamilyTransfer] = {
    "aarch64": FamilyTransfer(compute_ratio=0.3, band=1.0, source="assumed (not fitted yet)"),
}
UNKNOWN_FAMILY = FamilyTransfer(compute_ratio=0.3, band=1.0, source="assumed")


def transferred(fitted: RuntimeParams, arch: str, transfer: FamilyTransfer) -> RuntimeParams:
    """`fitted` as used on a CPU class of instruction set `arch` (see FAMILY_TRANSFER)."""
    return fitted.model_copy(update={
        "efficiency": {k: min(v * transfer.compute_ratio, 1.0) for k, v in fitted.efficiency.items()},
        "transfer_band": max(fitted.transfer_band, transfer.band),
        "source": f"{fitted.source}; transferred to {arch}: compute efficiency x "
                  f"{transfer.compute_ratio:.3g}, band x/÷ {1 + transfer.band:.2f} ({transfer.source})",
    })


def _other_arch(fitted: RuntimeParams, arch: str) -> RuntimeParams:
    return transferred(fitted, arch, FAMILY_TRANSFER.get(arch, UNKNOWN_FAMILY))


def default_calibration() -> Calibration:
    return Calibration(cpu=dict(FITTED_CPU), fitted_on="x86-zen4-2c (built in)")


def current_calibration(store=None) -> Calibration:
    """The calibration saved in the profile store, else the built-in one."""
    try:
        from profiles.store import ProfileStore

        body = (store or ProfileStore()).get_calibration(CALIBRATION_NAME)
    except Exception as exc:  # noqa: BLE001 - an unreadable store must not stop estimating
        logger.warning("calibration: cannot read the profile store (%s); using built-in", exc)
        body = None
    if body and body.get("model_version", 1) != MODEL_VERSION:
        logger.warning("calibration: the stored one was fitted for estimator model %s (now %s); "
                       "using the built-in one until it is fitted again", body.get("model_version", 1),
                       MODEL_VERSION)
        body = None
    if body:
        try:
            stored = Calibration.model_validate(body)
            # a calibration stored before a runtime existed keeps the built-in fit for it
            missing = {k: v for k, v in FITTED_CPU.items() if k not in stored.cpu}
            return stored.model_copy(update={"cpu": {**stored.cpu, **missing}}) if missing else stored
        except ValueError as exc:
            logger.warning("calibration: ignoring the stored one (%s)", exc)
    return default_calibration()


def save_calibration(calibration: Calibration, store=None) -> None:
    from profiles.store import ProfileStore

    (store or ProfileStore()).put_calibration(CALIBRATION_NAME, calibration.model_dump())
