"""ONNX Runtime behind one adapter, measured like TVM (see `measure`).

`onnxruntime` is the CPU execution provider; `onnxruntime-cuda` and `onnxruntime-trt` the CUDA
(fp32) and TensorRT (fp16) providers on an NVIDIA GPU (`profiles.gpu_runtimes`), measured only
where `onnxruntime.get_available_providers()` offers them. A GPU run's time includes copying the
inputs to the GPU and the outputs back (`session.run` on host arrays: what a server receiving
requests over the network does); its memory figure is the host process's growth (GPU memory is
not counted). A session that silently fell back to another provider is an error, not a row.

The session runs in a fresh spawned child process so its memory figure is the resident-set
growth of a process that holds nothing else, and a crash in a kernel is a typed error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from profiles.contention import CpuWatch
from profiles.gpu_runtimes import PROVIDER_OPTIONS, PROVIDERS, unavailable_reason
from profiles.hardware import local_cores
from profiles.measure import MeasureConfig, Measurement, measure_in_child, warm_up_and_plan
from profiles.onnx_prep import ensure_prepared, sample_feeds

logger = logging.getLogger(__name__)


class OrtError(RuntimeError):
    """ONNX Runtime could not load or run the model; the message names the model and the stage."""


def measure_onnxruntime(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, list[int]],
    config: MeasureConfig | None = None,
    threads: int | None = None,
    *,
    prepare: bool = True,
    sample_inputs: str | Path | None = None,
    runtime: str = "onnxruntime",
) -> Measurement:
    """Latency p50/p95 and memory of `model` under ONNX Runtime on this machine's CPU, or with
    `runtime` "onnxruntime-cuda" / "onnxruntime-trt" on its GPU (`OrtError` where the provider
    is missing: check `gpu_runtimes.unavailable_reason` first).

    `threads` is the intra-op thread count (default: the cores this process may use). The model
    is prepared (`onnx_prep.prepare_onnx`) first unless it already has these static shapes, or
    with `prepare=False` run as given (its inputs fixed: `onnx_prep.fix_input_shapes`), as for a
    model TVM cannot prepare. `sample_inputs` (.npz) replaces the random values of its inputs."""
    config = config or MeasureConfig()
    threads = threads or local_cores()
    if runtime != "onnxruntime":
        reason = unavailable_reason(runtime)
        if reason is not None:
            raise OrtError(reason)
    if prepare:
        model = ensure_prepared(model, input_shapes)
    return measure_in_child(model, module="profiles.ort_adapter", runtime_label="ONNX Runtime", error=OrtError,
                            config=config, threads=threads, spinning=config.ort_spinning,
                            sample_inputs=str(sample_inputs) if sample_inputs else None,
                            runtime=runtime)


def run_onnxruntime(model_path: str | Path, feeds: Mapping[str, np.ndarray],
                    threads: int | None = None) -> list[np.ndarray]:
    """One inference (a reference output for checking another runtime)."""
    session = _session(str(model_path), threads or local_cores())
    return session.run(None, dict(feeds))


def _session(model_path: str, threads: int, spinning: bool = True, runtime: str = "onnxruntime"):
    """The session a deployment runs: `threads` intra-op threads, sequential, all graph
    optimisations, spin-waiting only when asked (`MeasureConfig.ort_spinning`); on a GPU runtime
    its providers and their options (`gpu_runtimes.PROVIDERS`, `PROVIDER_OPTIONS`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if runtime == "onnxruntime":
        return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    names = PROVIDERS[runtime]
    provider_options = [PROVIDER_OPTIONS[runtime].get(name, {}) for name in names]
    session = ort.InferenceSession(model_path, options, providers=names, provider_options=provider_options)
    if session.get_providers()[0] != names[0]:
        raise OrtError(f"{runtime}: the session runs on {session.get_providers()}, not {names[0]}")
    return session


def _child_measure(payload: dict, report) -> dict:
    """In the child: create the session, warm up, sample; return a `Measurement` as a dict."""
    import psutil

    config = MeasureConfig.model_validate(payload["config"])
    feeds = sample_feeds(payload["inputs"], config.seed, payload.get("sample_inputs"))
    process = psutil.Process()
    report("session")
    rss_before = process.memory_info().rss
    runtime = payload.get("runtime", "onnxruntime")
    session = _session(payload["model_path"], payload["threads"], payload.get("spinning", True), runtime)

    report("warm-up")
    started = time.perf_counter()
    samples, runs = warm_up_and_plan(lambda: session.run(None, feeds), config)
    rss_after = process.memory_info().rss

    report("measure")
    samples_ms = []
    with CpuWatch() as watch:
        for _ in range(samples):
            t0 = time.perf_counter()
            for _ in range(runs):
                session.run(None, feeds)
            samples_ms.append((time.perf_counter() - t0) * 1000.0 / runs)
    rss_after = max(rss_after, process.memory_info().rss)
    measure_s = time.perf_counter() - started

    return Measurement.from_samples(
        runtime, samples_ms,
        memory_mb=max(rss_after - rss_before, 1) / 2**20,
        memory_method="rss-growth" if runtime == "onnxruntime" else "rss-growth (host; GPU memory not counted)",
        runs_per_sample=runs, measure_s=measure_s, threads=payload["threads"],
        spinning=payload.get("spinning", True), others_cpu_share=watch.result.others_cpu_share,
    ).model_dump()
