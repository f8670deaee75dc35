"""Fitting the roofline (`profiles.estimate_model`) to rows measured on this machine.

`fit_runtime` fits a runtime's kernel-kind efficiencies, its bandwidth efficiency and its fixed
costs (per kernel launch, per kernel split over threads, per inference) by least squares on log latency, lightly pulled
towards a prior so that a kind the data lacks keeps a sensible value. The fixed costs are only
identifiable when small pieces are among the rows: a zoo of ResNets says little about what a
20 µs model costs, so the fit takes small exported models and chains of tiny MatMuls (no work,
one kernel each: their latency is the fixed costs) too (`bench/profiles_bench.py`).

`leave_one_model_out` refits without each model (and its family) in turn and predicts it: those
errors are the honest error of an estimate for a model the fit never saw. `calibrate` keeps them
as the runtime's residuals (a piece's band comes from the residuals of models of its size,
`RuntimeParams.band_for`) and their 90th percentile, as a factor, as the overall `error_band`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from profiles.estimate_hardware import core_gflops
from profiles.estimate_model import (
    MIN_BAND,
    RuntimeParams,
    factor_band,
    predict_ms,
    roofline_ms,
)
from profiles.hardware_class import HardwareClass
from profiles.kernel_stats import KINDS, KernelStats


@dataclass(frozen=True)
class Sample:
    """One measured row with the statistics of its piece: what the fit learns from."""

    model: str
    runtime: str
    batch: int
    latency_ms: float
    stats: KernelStats


def _prior(eff, launch_ms, call_ms, dispatch_ms=0.002, single_thread=False) -> RuntimeParams:
    return RuntimeParams(efficiency=dict(zip(KINDS, eff)), bandwidth_efficiency=0.5,
                         launch_ms=launch_ms, call_ms=call_ms, dispatch_ms=dispatch_ms, error_band=1.0,
                         source="prior", single_thread=single_thread)


# Priors (and starting points) per runtime on a CPU; the fit moves them where data speaks.
PRIORS: dict[str, RuntimeParams] = {
    "tvm": _prior((0.1, 0.05, 0.1, 0.1), 0.005, 0.01, single_thread=True),
    "tvm-tuned": _prior((0.5, 0.2, 0.5, 0.2), 0.005, 0.01),
    "onnxruntime": _prior((0.5, 0.2, 0.5, 0.2), 0.001, 0.005),
    "openvino": _prior((0.5, 0.2, 0.5, 0.2), 0.003, 0.01),
}
PRIOR_WEIGHT = 0.1  # per log-parameter, against a residual of one log-latency per row
MAX_BANDWIDTH_EFFICIENCY = 8.0


def fit_runtime(samples: Sequence[Sample], hardware: HardwareClass, runtime: str,
                prior: RuntimeParams | None = None) -> RuntimeParams:
    """Efficiencies and fixed costs of `runtime` on `hardware` that best explain `samples`.

    Least squares (soft-L1, robust to a few disturbed measurements) on log(predicted / measured),
    each log-parameter pulled towards the prior with weight `PRIOR_WEIGHT`; compute efficiencies
    are kept in [0.001, 1], the bandwidth one in [0.001, 8], fixed costs in [1 ns, 10 ms]. The
    returned error figures are in-sample; `calibrate` replaces them with leave-one-model-out ones."""
    from scipy.optimize import least_squares

    prior = prior or PRIORS.get(runtime, PRIORS["onnxruntime"])
    rows = [s for s in samples if s.runtime == runtime]
    if not rows:
        raise ValueError(f"no measured {runtime} rows to fit")
    x0 = np.log(prior.as_vector())
    scaled = [(s.stats.at_batch(s.batch), math.log(s.latency_ms)) for s in rows]
    lower = np.log([1e-3] * (len(KINDS) + 1) + [1e-6, 1e-6, 1e-6])
    upper = np.log([1.0] * len(KINDS) + [MAX_BANDWIDTH_EFFICIENCY, 10.0, 10.0, 10.0])

    def residuals(theta):
        v = np.exp(theta)
        fit = [math.log(roofline_ms(st, hardware, v, single_thread=prior.single_thread,
                                    serial_fraction=prior.serial_fraction)) - y for st, y in scaled]
        return np.concatenate([fit, PRIOR_WEIGHT * (theta - x0)])

    # soft-L1: a row measured while a neighbour hogged the shared cores pulls less than others
    result = least_squares(residuals, np.clip(x0, lower + 1e-9, upper - 1e-9),
                           bounds=(lower, upper), method="trf", loss="soft_l1", f_scale=0.3)
    v = np.exp(result.x)
    logs = result.fun[:len(scaled)]
    n_models = len({s.model for s in rows})
    return RuntimeParams(
        efficiency={k: float(v[i]) for i, k in enumerate(KINDS)},
        bandwidth_efficiency=float(v[len(KINDS)]), launch_ms=float(v[len(KINDS) + 1]),
        call_ms=float(v[len(KINDS) + 2]), dispatch_ms=float(v[len(KINDS) + 3]),
        core_gflops=core_gflops(hardware),
        serial_fraction=prior.serial_fraction,
        error_band=factor_band(logs), median_error=math.exp(float(np.median(np.abs(logs)))) - 1.0,
        source=f"fitted on {hardware.name} ({n_models} models, {len(rows)} rows, in-sample)",
        single_thread=prior.single_thread,
    )


@dataclass(frozen=True)
class LooResult:
    """Leave-one-model-out: each row predicted by a fit that never saw its model."""

    runtime: str
    rows: list[dict]  # model, batch, flops, measured_ms, predicted_ms, rel_error, log_error

    def per_model(self) -> dict[str, float]:
        """Median error (factor − 1, either way) per left-out model."""
        by: dict[str, list[float]] = {}
        for r in self.rows:
            by.setdefault(r["model"], []).append(abs(r["log_error"]))
        return {m: math.exp(float(np.median(v))) - 1.0 for m, v in sorted(by.items())}

    @property
    def median_error(self) -> float:
        """Median error as a factor − 1 (0.25: a median of 1.25x off, either way)."""
        return math.exp(float(np.median([abs(r["log_error"]) for r in self.rows]))) - 1.0

    @property
    def p90_error(self) -> float:
        """90th percentile error as a factor − 1: the multiplicative band."""
        return math.exp(float(np.percentile([abs(r["log_error"]) for r in self.rows], 90))) - 1.0

    def residuals(self) -> list[tuple[float, float]]:
        return [(round(math.log10(max(r["flops"], 1.0)), 4), round(r["log_error"], 4))
                for r in self.rows]


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
                out.append({"model": model, "batch": s.batch, "flops": s.stats.at_batch(s.batch).flops,
                            "measured_ms": s.latency_ms, "predicted_ms": predicted,
                            "rel_error": predicted / s.latency_ms - 1.0,
                            "log_error": math.log(predicted / s.latency_ms)})
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
                "error_band": max(loo.p90_error, MIN_BAND), "median_error": loo.median_error,
                "residuals": loo.residuals(),
                "source": f"fitted on {hardware.name} ({n_models} models, {n_rows} rows); "
                          "error band = p90 of leave-one-model-out errors (as a factor), by size"})
        fitted[runtime] = params
    return fitted
