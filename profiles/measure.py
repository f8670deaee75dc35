"""What a measurement is: the config every runtime adapter takes and the result each returns.

Both adapters (TVM, ONNX Runtime) follow the same protocol so their numbers compare:

1. `warmup_runs` untimed inferences (lazy initialisation, thread-pool spin-up, caches);
2. `repeat` samples; one sample runs the model `number` times back to back and records the
   mean time of one run. When one run is shorter than `min_repeat_ms`, the runs per sample grow
   until a sample lasts at least `min_repeat_ms` (TVM's `time_evaluator` convention), so
   sub-millisecond pieces are not dominated by timer noise;
3. when a model is slow, `repeat` shrinks so the samples fit in `max_measure_s` (never below
   `min_samples`): a 2-second model is not run 30 times in a demo;
4. p50 and p95 are taken over the per-sample times (linear interpolation, numpy's default).
   With `runs_per_sample` > 1 the p95 is that of a mean of several runs and so understates the
   single-run tail; `Measurement.runs_per_sample` records it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# the child-process loop lives in `profiles.child`; its names stay importable from here
from profiles.child import ChildFailure, describe_exit, run_in_child  # noqa: F401
from profiles.errors import UserError

# onnxruntime-cuda / onnxruntime-trt: ONNX Runtime's CUDA (fp32) and TensorRT (fp16) execution
# providers on an NVIDIA GPU (`profiles.gpu_runtimes`)
Runtime = Literal["tvm", "tvm-tuned", "onnxruntime", "openvino", "onnxruntime-cuda", "onnxruntime-trt"]


class MeasureConfig(BaseModel):
    """How hard to measure. The defaults keep a cold demo (two CNNs, two runtimes, 2 cores)
    well under a minute of measuring; raise `repeat` and `max_measure_s` for a careful profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup_runs: int = Field(default=2, ge=0, description="untimed runs before sampling")
    number: int = Field(default=1, ge=1, description="minimum runs averaged into one sample")
    repeat: int = Field(default=30, ge=1, description="samples wanted; p50/p95 are over these")
    min_repeat_ms: float = Field(
        default=10.0, ge=0, description="a sample lasts at least this long (runs per sample grow);"
        " 10 ms: pieces of 10 ms or more are sampled one run at a time, so p95 is a single-run p95"
    )
    max_measure_s: float = Field(
        default=8.0, gt=0, description="time budget for sampling; slow models take fewer samples"
    )
    min_samples: int = Field(default=5, ge=1, description="never fewer samples than this")
    timeout_s: float = Field(
        default=600.0, gt=0, description="a child process (TVM compile + measure) is killed after this"
    )
    seed: int = Field(default=0, description="seed of the random inputs")
    ort_spinning: bool = Field(
        default=True, description="ONNX Runtime's intra-op threads spin-wait between kernels: "
        "its default, and what the exported bundle's sessions run with (placement export); "
        "off for a device whose cores other work shares")
    contended_retries: int = Field(
        default=2, ge=0, description="re-measure a row this many times more while other processes "
        "use the cores (`profiles.contention`); a row still contended is stored with that noise "
        "figure, said in the profile's problems, and measured again once the machine is quiet")

    def plan(self, run_ms: float) -> tuple[int, int]:
        """(samples, runs per sample) for a model whose one run took `run_ms` in warm-up."""
        run_ms = max(run_ms, 1e-6)
        runs = self.number
        if self.min_repeat_ms:
            runs = max(runs, math.ceil(self.min_repeat_ms / run_ms))
        sample_ms = runs * run_ms
        affordable = int(self.max_measure_s * 1000.0 // sample_ms)
        samples = max(self.min_samples, min(self.repeat, affordable))
        return samples, runs


def calibrate(run_once, min_ms: float = 5.0, max_runs: int = 1 << 20) -> float:
    """ms per run of `run_once`, timed over a batch that lasts at least `min_ms` (after warm-up)."""
    import time

    runs = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(runs):
            run_once()
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        if elapsed_ms >= min_ms or runs >= max_runs:
            return elapsed_ms / runs
        runs *= 4 if elapsed_ms < min_ms / 4 else 2


def warm_up_and_plan(run_once, config: MeasureConfig, *, discarded_later: int = 0) -> tuple[int, int]:
    """Run the warm-up, then return `config.plan(...)` for the time one run takes.

    At least one warm-up run always happens (it also times the model); `discarded_later` runs
    that the sampler itself discards (TVM's `time_evaluator` discards its first call) count
    towards `warmup_runs`. A run of 50 ms or more is timed by the last warm-up run alone;
    shorter ones by `calibrate`."""
    import time

    last_ms = 0.0
    for _ in range(max(1, config.warmup_runs - discarded_later)):
        t0 = time.perf_counter()
        run_once()
        last_ms = (time.perf_counter() - t0) * 1000.0
    run_ms = last_ms if last_ms >= 50.0 else calibrate(run_once)
    return config.plan(run_ms)


class Measurement(BaseModel):
    """One runtime's latency and memory for one prepared model on this machine.

    `memory_mb` is a real figure whose method `memory_method` names:
    - TVM (`tvm-plan`): bytes of the constants (weights) baked into the compiled module plus
      every storage block of the Relax VM's static memory plan (intermediates and outputs) —
      what the executable allocates for one inference, computed from the lowered program.
    - ONNX Runtime (`rss-growth`): growth of the resident set of a fresh child process from just
      before the session is created to after the warm-up runs (weights, prepacked weights, arena).
    """

    model_config = ConfigDict(extra="forbid")

    runtime: Runtime
    latency_ms_p50: float = Field(gt=0)
    latency_ms_p95: float = Field(gt=0)
    latency_ms_mean: float = Field(gt=0)
    memory_mb: float = Field(gt=0)
    memory_method: str
    n_samples: int = Field(ge=1)
    runs_per_sample: int = Field(ge=1)
    measure_s: float = Field(ge=0, description="wall time spent warming up and sampling")
    compile_s: float | None = Field(default=None, description="TVM: ONNX import to executable, s")
    target: dict | None = Field(default=None, description="TVM target actually used")
    threads: int | None = Field(default=None, description="intra-op threads (ONNX Runtime)")
    spinning: bool | None = Field(default=None, description="ONNX Runtime threads spin-waited")
    others_cpu_share: float | None = Field(
        default=None, description="share of the machine's CPU time other processes used while "
        "sampling (profiles.contention); 0.2 or more is a contended measurement")
    attempts: int = Field(default=1, ge=1, description="measurements taken (re-measured when contended)")
    max_abs_diff_vs_ort: float | None = Field(
        default=None, description="largest |TVM - ONNX Runtime| over all outputs, same random input"
    )
    max_rel_diff_vs_ort: float | None = Field(
        default=None, description="largest |TVM - ORT| / max|ORT|, per output, the worst output"
    )

    @classmethod
    def from_samples(cls, runtime: Runtime, samples_ms: Sequence[float], **fields) -> Measurement:
        p50, p95, mean = latency_stats(samples_ms)
        return cls(
            runtime=runtime, latency_ms_p50=p50, latency_ms_p95=p95, latency_ms_mean=mean,
            n_samples=len(samples_ms), **fields,
        )


def latency_stats(samples_ms: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p95, mean) of per-sample times in ms; p95 >= p50 by construction."""
    if len(samples_ms) == 0:
        raise ValueError("no latency samples")
    a = np.asarray(samples_ms, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"latency samples must be positive and finite, got {a.tolist()[:5]}...")
    p50, p95 = np.percentile(a, [50, 95])
    return float(p50), float(max(p95, p50)), float(a.mean())


def output_diff(reference: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> tuple[float, float]:
    """(max abs diff, max diff relative to the output's largest magnitude) over all outputs.

    Relative to max|reference| rather than elementwise, so outputs near zero do not blow it up."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference outputs but {len(other)} to compare")
    max_abs = max_rel = 0.0
    for ref, out in zip(reference, other):
        ref = np.asarray(ref)
        out = np.asarray(out)
        if ref.shape != out.shape:
            raise ValueError(f"output shapes differ: {ref.shape} vs {out.shape}")
        if ref.size == 0:
            continue
        diff = np.abs(ref.astype(np.float64) - out.astype(np.float64))
        max_abs = max(max_abs, float(diff.max()))
        scale = float(np.abs(ref.astype(np.float64)).max())
        max_rel = max(max_rel, float(diff.max()) / max(scale, 1e-12))
    return max_abs, max_rel


class NotMeasurableHereError(UserError):
    """The hardware class is not this machine (or the runtime cannot run on it); estimate instead."""


def measure_in_child(model, *, module: str, runtime_label: str, error: type[Exception],
                     config: MeasureConfig, threads: int, **extra) -> Measurement:
    """Save `model` to a temporary folder and run `module._child_measure` on it in a fresh child
    (its memory figure the growth of a process holding nothing else; a kernel crash a typed
    error): the one way every ONNX-file runtime adapter measures. `extra` joins the payload; a
    failure raises `error` naming the model, the runtime and the stage."""
    import tempfile
    from pathlib import Path

    from profiles.onnx_prep import input_specs, model_name, save_model

    with tempfile.TemporaryDirectory(prefix=f"{runtime_label.lower().replace(' ', '-')}-measure-") as tmp:
        path = save_model(model, Path(tmp) / "model.onnx")
        payload = {"model_path": str(path), "inputs": input_specs(model), "config": config.model_dump(),
                   "threads": threads, **extra}
        try:
            result = run_in_child(module, "_child_measure", payload, timeout_s=config.timeout_s,
                                  log_path=Path(tmp) / "child.log", first_stage="start")
        except ChildFailure as exc:
            tail = f"\n{exc.log_tail}" if exc.log_tail and exc.error_type is None else ""
            raise error(f"{model_name(model)}: {runtime_label} failed during {exc.stage}: "
                        f"{exc.message}{tail}") from exc
    return Measurement.model_validate(result)
