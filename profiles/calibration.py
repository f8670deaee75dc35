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
kind (stated in `ASSUMED`): untuned-TVM CPU latency is never scaled to a GPU. ONNX Runtime's GPU
providers (`GPU_ORT`) keep an assumed per-kind shape whose scale and launch cost are fitted on
published batch-1 latencies (docs/published_latency.csv). A CPU class of
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

# ONNX Runtime on NVIDIA GPUs, per runtime: the roofline over the class's fp32 (non-tensor-core)
# peak and DRAM bandwidth, with a fixed cost per kernel launch and the class's overhead (launch +
# host<->device copies). TensorRT runs fp16 on tensor cores: its efficiencies are multiples of the
# fp32 peak (above 1 where tensor cores beat the fp32 units) and its bandwidth efficiency counts
# fp16's half-size bytes. The per-kind shape (convolutions and matmuls near the fp32 peak for
# cuDNN, several times it for TensorRT fp16; depthwise and elementwise kernels memory- or
# latency-bound) is assumed; one compute scale and the per-launch cost of each runtime are
# fitted on the published batch-1 latencies of docs/published_latency.csv by
# `python bench/estimator_published.py --fit-gpu` (T4 and V100 rows only: no published batch-1
# figure on an A10/A10G, L4, A100 or H100 was found, and their fp16 tensor-core to fp32 ratios
# differ: 4x on A10/L4, 8x on T4/V100, 16x on A100/H100). `onnxruntime-cuda` is anchored on
# TensorRT fp32 rows (no citable batch-1 figure of ONNX Runtime's CUDA provider on a catalog GPU
# was found): ONNX Runtime's cuDNN kernels fuse less than TensorRT, so it is likely slower than
# estimated. The bands are at least x/÷ 2 for that reason (see each `source`). The fitted launch
# costs (3.9 and 0.7 µs) are below a real kernel launch: they absorb that the class's fixed
# overhead (0.15-0.2 ms of launches and copies) is charged in full while several published
# figures time the engine alone; for a small piece these estimates are therefore rough.
GPU_ORT: dict[str, RuntimeParams] = {
    "onnxruntime-cuda": RuntimeParams(
        efficiency={"conv": 0.265, "dwconv": 0.026, "matmul": 0.353, "other": 0.088},
        bandwidth_efficiency=0.5, launch_ms=0.0039, error_band=1.0, median_error=0.38,
        source="assumed per-kind shape; compute scale and launch cost fitted on 4 published TensorRT fp32 "
               "batch-1 rows (T4: ResNet-18, ResNet-50, MobileNetV2; V100: ResNet-50), standing in for ONNX "
               "Runtime's CUDA provider, docs/published_latency.csv; leave-one-model-out p90 x/÷ 1.47, band "
               "widened to x/÷ 2 (proxy runtime, two GPU classes checked)"),
    "onnxruntime-trt": RuntimeParams(
        efficiency={"conv": 0.804, "dwconv": 0.048, "matmul": 0.965, "other": 0.161},
        bandwidth_efficiency=1.0, launch_ms=0.0007, error_band=1.87, median_error=0.62,
        source="assumed per-kind shape (fp16, efficiencies as multiples of the fp32 peak); compute scale "
               "and launch cost fitted on 7 published TensorRT fp16 batch-1 rows (T4: ResNet-18 x2, "
               "ResNet-50 x2, MobileNetV2 x2; V100: ResNet-50), docs/published_latency.csv; band = p90 of "
               "leave-one-model-out errors (x/÷ 2.87)"),
}

# Assumed, not fitted (nothing here can measure them). GPU `tvm` means TVM's CUDA build with
# `tvm.s_tir.dlight` default GPU schedules (DESIGN.md): its matmul rule reaches a modest share of
# the fp32 (non-tensor-core) peak, convolutions (no dlight conv rule; fallback schedule) much
# less; memory-bound kernels about half the DRAM bandwidth; ~5 us per kernel launch. NPU
# `onnxruntime` (e.g. Inferentia through its ONNX path) reaches a fair share of its peak on
# GEMM-like work. The error band (1.0: ×/÷2) says these are rough.
ASSUMED: dict[tuple[str, str], RuntimeParams] = {
    ("gpu", "tvm"): RuntimeParams(
        efficiency={"conv": 0.05, "dwconv": 0.02, "matmul": 0.2, "other": 0.1},
        bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
        source="assumed: dlight default GPU schedules (not measured)"),
    # ONNX Runtime's CUDA (fp32, cuDNN) and TensorRT (fp16) providers (`profiles.gpu_runtimes`):
    # see GPU_ORT below.
    **{("gpu", runtime): params for runtime, params in GPU_ORT.items()},
    ("npu", "onnxruntime"): RuntimeParams(
        efficiency={"conv": 0.3, "dwconv": 0.05, "matmul": 0.4, "other": 0.05},
        bandwidth_efficiency=0.5, launch_ms=0.01, error_band=1.0,
        source="assumed: NPU through ONNX (not measured)"),
}

# Fitted on x86-zen4-2c (this project's 2-core AMD EPYC machine) by the procedure of
# `python bench/profiles_bench.py --tvm-batches "" --runs 3` on 2026-12-02, under the estimator's
# model 2: 4 zoo + 7 exported models + 9 small real exports (tests/data) + 3 fixed-cost probes,
# ONNX Runtime at batches 1, 2, 4 (67 rows), each row the least disturbed of 3-8 runs — the
# machine was shared with three other sessions (load 2-5 on 2 cores), so even those rows carry
# noise. Leave-one-family-out error: median 1.18x, p90 1.71x either way (by size: ×/÷ 1.4-1.6
# below 1 MFLOP, 1.8-2.1 from 1 to 100 MFLOP, 1.6-1.7 above 1 GFLOP). The fixed costs: 7.4 µs per
# call, 0.6 µs per kernel, 3.1 µs more per kernel split over threads.
# `tvm` keeps the fit made under model 1 (2026-11-25: 10 models, 20 rows, untuned TVM at batches
# 1, 2; LOO median 23 %, p90 78 %): untuned TVM runs on one core, so the thread speed-up does not
# apply, no per-call cost was fitted, and its bandwidth efficiency (1.29) now credits only bytes
# that fit in cache. Refit it with `python bench/profiles_bench.py` (untuned TVM takes ~20 min).
# `openvino` (OpenVINO 2026.4.1, CPU plugin, PERFORMANCE_HINT=LATENCY, threads = cores) was fitted
# by `python bench/runtimes.py --no-tvm --no-plan --fit` on 2026-12-02 on the quiet machine (load
# 0.3-1.3, each row's contention share under 20 %): 4 zoo + 7 exported models at batches 1, 2, 4 (33
# rows); leave-one-family-out median error 22 %, p90 106 % (the bands by size follow from the
# residuals below). It estimates OpenVINO on the other CPU classes, Arm included (OpenVINO's CPU
# plugin runs on Arm through its ACL backend), scaled like ONNX Runtime by the family ratios.
# A stored calibration (`save_calibration`, `--save-calibration`) replaces these.
FITTED_CPU: dict[str, RuntimeParams] = {
    "openvino": RuntimeParams(
        efficiency={"conv": 0.913, "dwconv": 0.205, "matmul": 0.616, "other": 0.331},
        bandwidth_efficiency=4.516, launch_ms=0.00183, call_ms=0.1389,
        dispatch_ms=0.00137, core_gflops=118.4, error_band=1.058,
        median_error=0.220,
        residuals=[  # (log10 FLOPs, ln(estimate / measured)) of each leave-one-family-out row
            (8.79, 0.218), (9.09, 0.128), (9.39, -0.229), (9.56, 0.135), (9.86, 0.202), (10.16, 0.245),
            (9.91, -0.325), (10.22, -0.012), (10.52, -0.099), (7.33, 1.713), (7.63, 1.084), (7.93, 0.791),
            (7.81, -1.244), (8.11, -0.433), (8.41, -0.443), (9.01, -0.268), (9.31, 0.142), (9.61, 0.146),
            (8.25, -0.060), (8.55, 0.185), (8.85, -0.132), (9.56, 0.094), (9.86, -0.301), (10.16, 0.116),
            (8.94, 0.013), (9.24, -0.051), (9.55, 0.140), (9.11, 0.219), (9.41, 0.295), (9.72, 0.052),
            (8.94, 0.199), (9.25, 0.108), (9.55, 0.223),
        ],
        source="fitted on x86-zen4-2c (11 models, 33 rows: OpenVINO 2026.4.1 at batches 1, 2, 4); error band = "
               "p90 of leave-one-model-out errors (as a factor), by size"),
    "onnxruntime": RuntimeParams(
        efficiency={"conv": 0.968, "dwconv": 0.192, "matmul": 0.669, "other": 0.390},
        bandwidth_efficiency=3.091, launch_ms=0.00062, call_ms=0.00745,
        dispatch_ms=0.00305, core_gflops=118.4, error_band=0.711,
        median_error=0.182,
        residuals=[  # (log10 FLOPs, ln(estimate / measured)) of each leave-one-family-out row
            (2.11, -0.017), (2.41, -0.164), (2.71, -0.168), (3.01, -0.145), (3.31, -0.176), (3.61, -0.167),
            (3.61, 0.024), (3.91, 0.443), (4.21, 0.447), (4.28, 0.27), (5.45, 0.201), (5.75, 0.156),
            (6.06, 0.054), (6.52, 0.105), (6.57, -0.482), (6.59, -0.111), (6.66, -0.723), (6.82, 0.137),
            (6.87, 0.278), (6.9, 0.231), (6.96, -0.603), (7.0, 0.145), (7.12, 0.094), (7.17, 0.233),
            (7.2, 0.057), (7.26, -0.282), (7.3, -0.086), (7.3, 0.009), (7.3, 0.173), (7.33, -0.822),
            (7.6, -0.019), (7.6, 0.077), (7.61, -0.088), (7.63, -0.368), (7.81, -0.782), (7.9, -0.262),
            (7.9, -0.167), (7.93, -0.121), (8.11, -0.48), (8.25, 0.59), (8.41, -0.341), (8.55, 0.246),
            (8.79, 0.399), (8.85, 0.802), (8.94, -0.702), (8.94, 0.164), (9.01, 0.099), (9.09, 0.477),
            (9.11, 0.276), (9.24, -0.502), (9.25, 0.091), (9.31, 0.139), (9.39, 0.46), (9.41, 0.155),
            (9.55, 0.163), (9.55, 0.188), (9.56, -0.02), (9.56, 0.051), (9.61, 0.217), (9.72, 0.283),
            (9.86, -0.008), (9.86, 0.057), (9.91, -0.07), (10.16, -0.043), (10.16, 0.055), (10.22, 0.044),
            (10.52, -0.01),
        ],
        source="fitted on x86-zen4-2c (23 models, 67 rows); error band = p90 of leave-one-model-out "
               "errors (as a factor), by size"),
    "tvm": RuntimeParams(
        efficiency={"conv": 0.0195, "dwconv": 0.274, "matmul": 0.0115, "other": 0.100},
        bandwidth_efficiency=1.29, launch_ms=0.00426, error_band=0.777, median_error=0.233,
        source="fitted on x86-zen4-2c (10 models, 20 rows; estimator model 1); error band = "
               "p90 of |leave-one-model-out error|", single_thread=True),
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
            return _other_arch(fitted, hardware)
        return ASSUMED.get((hardware.kind, runtime))


# A CPU fit does not carry over to another instruction set unchanged: ONNX Runtime's x86 kernels
# (AVX-512 GEMM) reach a larger share of peak than NEON kernels on small Arm cores. Until an Arm
# device is measured (`placement profile --tracker`), a class of another instruction set gets
# the fit with every compute efficiency scaled by its family's `compute_ratio` (the fit's
# relative efficiencies per kernel kind kept: a cap at one level flattened convolutions to the
# depthwise level) and a transfer band that multiplies the fit's own band. A family is the
# class's microarchitecture where published figures for it exist ("aarch64/cortex-a73"), else
# its instruction set ("aarch64"). Both numbers come from docs/published_latency.csv through
# `python bench/estimator_published.py --fit-family`: per microarchitecture the ratio that best
# explains its rows and the 90th percentile of its leave-one-model-out errors; for the
# instruction set the ratio over all its rows and the 90th percentile of leave-one-
# *microarchitecture*-out errors (what a microarchitecture without figures can expect). The
# published Arm rows are ncnn (no citable ONNX Runtime figure for these models on these cores
# was found): ncnn's Winograd 3x3 convolutions make it faster than ONNX Runtime on ResNets, so
# ONNX Runtime there may be slower than estimated — within the band's upper side. A per-
# microarchitecture ratio also absorbs how the catalog states the peak: the Cortex-A72 class
# counts 16 fp32 FLOP/cycle, the Cortex-A73 one 8, yet ncnn reaches the same FLOPs per cycle on
# both (ResNet-50 on one core: 6.7 at 1.8 GHz vs 5.9 at 2.4 GHz), so their ratios differ ~2x.


class FamilyTransfer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    compute_ratio: float = Field(gt=0, le=1, description="fitted efficiencies x this, per kind")
    band: float = Field(gt=0, description="transfer band (multiplicative, LOO p90)")
    source: str


FAMILY_TRANSFER: dict[str, FamilyTransfer] = {
    "aarch64/cortex-a72": FamilyTransfer(
        compute_ratio=0.372, band=0.26,
        source="fitted on 6 published ncnn rows (RK3399's Cortex-A72s at 1.8 GHz, 1 and 2 threads; "
               "leave-one-model-out band), docs/published_latency.csv"),
    "aarch64/cortex-a73": FamilyTransfer(
        compute_ratio=0.819, band=0.24,
        source="fitted on 12 published ncnn rows (Kirin 970 and Snapdragon 835, 1 and 4 threads; "
               "leave-one-model-out band), docs/published_latency.csv"),
    "aarch64": FamilyTransfer(
        compute_ratio=0.633, band=1.50,
        source="fitted on the 18 published ncnn rows of Cortex-A72/A73 boards; band from leaving "
               "one microarchitecture out, docs/published_latency.csv"),
}
UNKNOWN_FAMILY = FamilyTransfer(compute_ratio=0.3, band=1.0, source="assumed")


def family_of(hardware: HardwareClass) -> list[str]:
    """The FAMILY_TRANSFER keys that may apply to a class, most specific first."""
    target = hardware.tvm_target if isinstance(hardware.tvm_target, dict) else {}
    mcpu = target.get("mcpu")
    return ([f"{hardware.arch}/{mcpu}"] if mcpu else []) + [hardware.arch]


def family_transfer(hardware: HardwareClass) -> FamilyTransfer:
    return next((FAMILY_TRANSFER[k] for k in family_of(hardware) if k in FAMILY_TRANSFER), UNKNOWN_FAMILY)


def transferred(fitted: RuntimeParams, family: str, transfer: FamilyTransfer) -> RuntimeParams:
    """`fitted` as used on a CPU class of another instruction set (see FAMILY_TRANSFER)."""
    return fitted.model_copy(update={
        "efficiency": {k: min(v * transfer.compute_ratio, 1.0) for k, v in fitted.efficiency.items()},
        "transfer_band": max(fitted.transfer_band, transfer.band),
        "source": f"{fitted.source}; transferred to {family}: compute efficiency x "
                  f"{transfer.compute_ratio:.3g}, band x/÷ {1 + transfer.band:.2f} ({transfer.source})",
    })


def _other_arch(fitted: RuntimeParams, hardware: HardwareClass) -> RuntimeParams:
    key = next((k for k in family_of(hardware) if k in FAMILY_TRANSFER), hardware.arch)
    return transferred(fitted, key, family_transfer(hardware))


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
