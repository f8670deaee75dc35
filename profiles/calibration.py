"""The calibrated estimator's model: per-kernel FLOPs and bytes, a roofline, fitted efficiencies.

What a piece costs is read from the program TVM would run, kernel by kernel:

1. **Kernel statistics** (`KernelStats`, in `profiles.kernel_stats`): the prepared ONNX model is imported into Relax and put
   through the passes of `relax.get_pipeline("zero")` (legalize, fuse, FuseTIR) — the same
   fusion `profiles/tvm_adapter.py` compiles (FoldConstant is skipped for speed; see
   `fuse_for_stats`). Every `call_tir` in `main` is one kernel launch: its
   FLOPs come from `tvm.s_tir.analysis.estimate_tir_flops` on the fused PrimFunc (a multiply-add
   counts 2), its bytes from the shapes and dtypes of its arguments and results (split into
   constant bytes — weights, which do not grow with the batch — and activation bytes, which do).
   This runs in a child process (TVM compile work can crash). A model TVM cannot import gets the
   same statistics from the ONNX graph itself (`onnx_kernel_stats`, one kernel per node).
2. **Roofline**: a kernel takes `max(flops / (e_kind × peak), bytes / (e_bw × bandwidth))` plus a
   fixed cost per launch; a piece takes the sum over its kernels plus the class's `overhead_ms`.
   `kind` is conv, dwconv (depthwise: under 40 FLOPs per output element), matmul, other
   (elementwise, pooling, normalisation) or free (reshapes, which the VM turns into views).
   `peak` and `bandwidth` are the hardware class's `peak_gflops` and `mem_bandwidth_gbs`; for
   untuned TVM on a CPU they are divided by the core count, because default TIR schedules run
   on one thread (no parallel loops).
3. **Calibration** (`fit_runtime`): the efficiencies `e_kind`, `e_bw` and the per-launch cost are
   fitted per (hardware kind, runtime) on measured rows — zoo and exported models measured on
   this machine — by least squares on log latency, lightly pulled towards a prior so that a kind
   the data lacks keeps a sensible value. `leave_one_model_out` refits without each model in
   turn and predicts it: the spread of those relative errors is the honest error of an estimate
   for a model the fit never saw, and its 90th percentile becomes every estimated row's
   `error_band`.

GPU and NPU classes cannot be measured here, so their efficiencies are **assumed**, per class
kind (stated in `ASSUMED`): untuned-TVM CPU latency is never scaled to a GPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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


# --- the roofline -----------------------------------------------------------------------------

class RuntimeParams(BaseModel):
    """Efficiencies of one runtime on one kind of hardware, and how far to trust them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    efficiency: dict[str, float] = Field(description="fraction of peak FLOP/s per kernel kind")
    bandwidth_efficiency: float = Field(
        gt=0, description="effective bandwidth as a fraction of the DRAM figure; above 1 when "
        "activations stay in cache (a 2-core slice of a server CPU has a large L3)")
    launch_ms: float = Field(ge=0, description="fixed cost per kernel launch, ms")
    error_band: float = Field(gt=0, description="90th percentile of |relative error| (LOO)")
    median_error: float | None = Field(default=None, description="median |LOO relative error|")
    source: str = Field(description="fitted on <hardware> (n models, n rows) | assumed")
    single_thread: bool = Field(default=False, description="runs on one core (untuned TVM)")

    def as_vector(self) -> np.ndarray:
        return np.array([*(self.efficiency[k] for k in KINDS), self.bandwidth_efficiency,
                         max(self.launch_ms, 1e-6)])


def usable_peak(hardware: HardwareClass, single_thread: bool) -> tuple[float, float]:
    """(GFLOP/s, GB/s) a runtime can draw on: the class's peaks, one core's share if single-threaded."""
    if single_thread and hardware.kind == "cpu":
        return hardware.peak_gflops / hardware.cores, hardware.mem_bandwidth_gbs / hardware.cores
    return hardware.peak_gflops, hardware.mem_bandwidth_gbs


def _features(stats: KernelStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per launched kernel: kind index, FLOPs, bytes, calls (free kernels dropped)."""
    kept = [k for k in stats.kernels if k.kind != "free"]
    kind = np.array([KINDS.index(k.kind) for k in kept], dtype=np.int64)
    return (kind, np.array([k.flops for k in kept]), np.array([k.const_bytes + k.act_bytes for k in kept]),
            np.array([k.calls for k in kept], dtype=np.float64))


def roofline_ms(stats: KernelStats, hardware: HardwareClass, vector: np.ndarray,
                single_thread: bool) -> float:
    """Latency of one inference: Σ calls · (max(compute, memory) + launch) + class overhead."""
    gflops, gbs = usable_peak(hardware, single_thread)
    kind, flops, nbytes, calls = _features(stats)
    eff = vector[:len(KINDS)][kind]
    compute_ms = flops / (eff * gflops * 1e6)
    memory_ms = nbytes / (vector[len(KINDS)] * gbs * 1e6)
    return float(np.sum(calls * (np.maximum(compute_ms, memory_ms) + vector[-1]))
                 + hardware.overhead_ms)


def predict_ms(stats: KernelStats, batch: int, hardware: HardwareClass,
               params: RuntimeParams) -> float:
    return roofline_ms(stats.at_batch(batch), hardware, params.as_vector(), params.single_thread)


# --- fitting ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One measured row with the statistics of its piece: what the fit learns from."""

    model: str
    runtime: str
    batch: int
    latency_ms: float
    stats: KernelStats


# Priors (and starting points) per runtime on a CPU; the fit moves them where data speaks.
PRIORS: dict[str, RuntimeParams] = {
    "tvm": RuntimeParams(efficiency={"conv": 0.1, "dwconv": 0.05, "matmul": 0.1, "other": 0.1},
                         bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
                         source="prior", single_thread=True),
    "tvm-tuned": RuntimeParams(efficiency={"conv": 0.5, "dwconv": 0.2, "matmul": 0.5, "other": 0.2},
                               bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
                               source="prior"),
    "onnxruntime": RuntimeParams(efficiency={"conv": 0.5, "dwconv": 0.2, "matmul": 0.5,
                                             "other": 0.2},
                                 bandwidth_efficiency=0.5, launch_ms=0.003, error_band=1.0,
                                 source="prior"),
    "openvino": RuntimeParams(efficiency={"conv": 0.5, "dwconv": 0.2, "matmul": 0.5, "other": 0.2},
                              bandwidth_efficiency=0.5, launch_ms=0.003, error_band=1.0,
                              source="prior"),
}
PRIOR_WEIGHT = 0.1  # per log-parameter, against a residual of one log-latency per row
MAX_BANDWIDTH_EFFICIENCY = 8.0


def fit_runtime(samples: Sequence[Sample], hardware: HardwareClass, runtime: str,
                prior: RuntimeParams | None = None) -> RuntimeParams:
    """Efficiencies of `runtime` on `hardware` that best explain `samples` (all of that runtime).

    Least squares (soft-L1, robust to a few disturbed measurements) on log(predicted / measured),
    each log-parameter pulled towards the prior with weight `PRIOR_WEIGHT`; compute efficiencies
    are kept in [0.001, 1], the bandwidth one in [0.001, 8]. The returned error figures are
    in-sample; `calibrate` replaces them with leave-one-model-out ones."""
    from scipy.optimize import least_squares

    prior = prior or PRIORS.get(runtime, PRIORS["onnxruntime"])
    rows = [s for s in samples if s.runtime == runtime]
    if not rows:
        raise ValueError(f"no measured {runtime} rows to fit")
    x0 = np.log(prior.as_vector())
    scaled = [(s.stats.at_batch(s.batch), math.log(s.latency_ms)) for s in rows]
    lower = np.log([1e-3] * (len(KINDS) + 1) + [1e-6])
    upper = np.log([1.0] * len(KINDS) + [MAX_BANDWIDTH_EFFICIENCY, 10.0])

    def residuals(theta):
        v = np.exp(theta)
        fit = [math.log(roofline_ms(st, hardware, v, prior.single_thread)) - y for st, y in scaled]
        return np.concatenate([fit, PRIOR_WEIGHT * (theta - x0)])

    # soft-L1: a row measured while a neighbour hogged the shared cores pulls less than others
    result = least_squares(residuals, np.clip(x0, lower + 1e-9, upper - 1e-9),
                           bounds=(lower, upper), method="trf", loss="soft_l1", f_scale=0.3)
    v = np.exp(result.x)
    errors = [abs(math.exp(r) - 1.0) for r in result.fun[:len(scaled)]]
    n_models = len({s.model for s in rows})
    return RuntimeParams(
        efficiency={k: float(v[i]) for i, k in enumerate(KINDS)},
        bandwidth_efficiency=float(v[len(KINDS)]), launch_ms=float(v[-1]),
        error_band=float(max(np.percentile(errors, 90), 0.05)),
        median_error=float(np.median(errors)),
        source=f"fitted on {hardware.name} ({n_models} models, {len(rows)} rows, in-sample)",
        single_thread=prior.single_thread,
    )


@dataclass(frozen=True)
class LooResult:
    """Leave-one-model-out: each row predicted by a fit that never saw its model."""

    runtime: str
    rows: list[dict]  # model, batch, measured_ms, predicted_ms, rel_error

    def per_model(self) -> dict[str, float]:
        """Median |relative error| per left-out model."""
        by: dict[str, list[float]] = {}
        for r in self.rows:
            by.setdefault(r["model"], []).append(abs(r["rel_error"]))
        return {m: float(np.median(v)) for m, v in sorted(by.items())}

    @property
    def median_error(self) -> float:
        return float(np.median([abs(r["rel_error"]) for r in self.rows]))

    @property
    def p90_error(self) -> float:
        return float(np.percentile([abs(r["rel_error"]) for r in self.rows], 90))


def leave_one_model_out(samples: Sequence[Sample], hardware: HardwareClass, runtime: str,
                        groups: Mapping[str, str] | None = None) -> LooResult:
    """Refit without each model and predict it. `groups` maps a model to its family: a model's
    whole family is left out with it (a torch export of ResNet-18 must not be predicted by a fit
    that saw the zoo's ResNet-18)."""
    groups = groups or {}
    rows = [s for s in samples if s.runtime == runtime]
    models = sorted({s.model for s in rows})
    if len({groups.get(m, m) for m in models}) < 2:
        raise ValueError(f"{runtime}: leave-one-model-out needs at least 2 models, got {models}")
    out = []
    for model in models:
        family = groups.get(model, model)
        params = fit_runtime([s for s in rows if groups.get(s.model, s.model) != family],
                             hardware, runtime)
        for s in rows:
            if s.model == model:
                predicted = predict_ms(s.stats, s.batch, hardware, params)
                out.append({"model": model, "batch": s.batch, "measured_ms": s.latency_ms,
                            "predicted_ms": predicted,
                            "rel_error": predicted / s.latency_ms - 1.0})
    return LooResult(runtime, out)


def calibrate(samples: Sequence[Sample], hardware: HardwareClass,
              groups: Mapping[str, str] | None = None) -> dict[str, RuntimeParams]:
    """Fit every runtime present in `samples` on all of them; error figures from LOO."""
    fitted = {}
    for runtime in sorted({s.runtime for s in samples}):
        params = fit_runtime(samples, hardware, runtime)
        n_models = len({s.model for s in samples if s.runtime == runtime})
        n_rows = sum(1 for s in samples if s.runtime == runtime)
        if n_models >= 3:
            loo = leave_one_model_out(samples, hardware, runtime, groups)
            params = params.model_copy(update={
                "error_band": max(loo.p90_error, 0.05), "median_error": loo.median_error,
                "source": f"fitted on {hardware.name} ({n_models} models, {n_rows} rows); "
                          "error band = p90 of |leave-one-model-out error|"})
        fitted[runtime] = params
    return fitted


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


class Calibration(BaseModel):
    """Efficiencies per runtime for CPU classes (fitted) and per (kind, runtime) elsewhere."""

    model_config = ConfigDict(frozen=True)

    cpu: dict[str, RuntimeParams]
    fitted_on: str = ""
    fitted_arch: str = "x86_64"

    def params(self, hardware: HardwareClass, runtime: str) -> RuntimeParams | None:
        if hardware.kind == "cpu":
            fitted = self.cpu.get(runtime)
            if fitted is None or hardware.arch == self.fitted_arch:
                return fitted
            return _other_arch(fitted, hardware.arch)
        return ASSUMED.get((hardware.kind, runtime))


# A CPU fit does not carry over to another instruction set: ONNX Runtime's x86 kernels reach a
# far larger share of peak (AVX-512 GEMM) than its NEON kernels on small Arm cores. Until an
# Arm device is measured (`placement profile --tracker`), compute efficiencies are capped at an
# assumed Arm level and the band is widened to ±100 %.
OTHER_ARCH_EFFICIENCY_CAP = 0.3


def _other_arch(fitted: RuntimeParams, arch: str) -> RuntimeParams:
    return fitted.model_copy(update={
        "efficiency": {k: min(v, OTHER_ARCH_EFFICIENCY_CAP) for k, v in fitted.efficiency.items()},
        "error_band": max(fitted.error_band, 1.0),
        "source": f"{fitted.source}; transferred to {arch} with compute efficiency capped at "
                  f"{OTHER_ARCH_EFFICIENCY_CAP:.0%} (assumed, not measured)",
    })


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
