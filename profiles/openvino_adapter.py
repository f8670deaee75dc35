"""OpenVINO (CPU plugin, reading ONNX directly) behind one adapter, measured like ONNX Runtime.

Settings are latency-oriented and stated, so a row says what it measured:

- `PERFORMANCE_HINT: LATENCY` (one inference at a time, all its threads on it; the plugin's
  "THROUGHPUT" hint would run several streams and answer a different question);
- `INFERENCE_NUM_THREADS` = the hardware class's cores (what ONNX Runtime gets too);
- `INFERENCE_PRECISION_HINT: f32`: the rows are fp32 like every other runtime's (the CPU plugin
  would otherwise pick bf16 on CPUs with AMX, which changes accuracy, not just speed);
- `NUM_STREAMS: 1`, `ENABLE_CPU_PINNING` left at the plugin's default.

Like ONNX Runtime's, every measurement records the share of the machine's CPU time other
processes used while it sampled (`profiles.contention`), so the profiler re-measures a
contended row.

The compiled model runs in a fresh spawned child process (`profiles.child.run_in_child`) so the
memory figure is the resident-set growth of a process that holds nothing else (read + compile +
warm-up), and a crash is a typed error. The same random input is run once through ONNX Runtime
in that child, so every row says how far OpenVINO's output is from ONNX Runtime's
(`Measurement.max_abs_diff_vs_ort`).

`openvino` is imported lazily: without the package, `openvino_available()` is False and the
profiler reports an `OpenVinoError` problem instead of failing the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import onnx

from profiles.contention import CpuWatch
from profiles.hardware import local_cores
from profiles.measure import MeasureConfig, Measurement, measure_in_child, output_diff, warm_up_and_plan
from profiles.onnx_prep import ensure_prepared, random_feeds

logger = logging.getLogger(__name__)

RUNTIME = "openvino"


class OpenVinoError(RuntimeError):
    """OpenVINO is missing, or could not read, compile or run the model; the message says which."""


def openvino_version() -> str:
    """The installed openvino package's version, or "absent" (package metadata; nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openvino")
    except PackageNotFoundError:
        return "absent"


def openvino_available() -> bool:
    return openvino_version() != "absent"


def compile_config(threads: int) -> dict[str, str]:
    """The CPU plugin properties every measurement uses (see the module docstring)."""
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(int(threads)),
        "INFERENCE_PRECISION_HINT": "f32",
        "NUM_STREAMS": "1",
    }


def measure_openvino(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, list[int]],
    config: MeasureConfig | None = None,
    threads: int | None = None,
) -> Measurement:
    """Latency p50/p95 and memory of `model` under OpenVINO on this machine's CPU.

    `threads`: INFERENCE_NUM_THREADS (default: the cores this process may use). The model is
    prepared (`onnx_prep.prepare_onnx`) first unless it already has these static shapes, so
    OpenVINO reads the same graph ONNX Runtime and TVM do."""
    if not openvino_available():
        raise OpenVinoError("OpenVINO is not installed (pip install openvino)")
    config = config or MeasureConfig()
    threads = threads or local_cores()
    model = ensure_prepared(model, input_shapes)
    return measure_in_child(model, module="profiles.openvino_adapter", runtime_label="OpenVINO",
                            error=OpenVinoError, config=config, threads=threads)


def _compiled(model_path: str, threads: int):
    import openvino as ov

    core = ov.Core()
    return core.compile_model(core.read_model(model_path), "CPU", compile_config(threads))


def _child_measure(payload: dict, report) -> dict:
    """In the child: read + compile, warm up, sample; return a `Measurement` as a dict."""
    import psutil

    config = MeasureConfig.model_validate(payload["config"])
    feeds = random_feeds(payload["inputs"], config.seed)
    process = psutil.Process()
    report("compile")
    rss_before = process.memory_info().rss
    t0 = time.perf_counter()
    compiled = _compiled(payload["model_path"], payload["threads"])
    request = compiled.create_infer_request()
    compile_s = time.perf_counter() - t0

    def run_once():
        request.infer(feeds)

    report("warm-up")
    started = time.perf_counter()
    samples, runs = warm_up_and_plan(run_once, config)
    rss_after = process.memory_info().rss

    report("measure")
    samples_ms = []
    with CpuWatch() as watch:  # other processes' CPU time while sampling (profiles.contention)
        for _ in range(samples):
            t0 = time.perf_counter()
            for _ in range(runs):
                run_once()
            samples_ms.append((time.perf_counter() - t0) * 1000.0 / runs)
    rss_after = max(rss_after, process.memory_info().rss)
    measure_s = time.perf_counter() - started

    report("compare")
    outputs = [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
    max_abs = max_rel = None
    try:
        from profiles.ort_adapter import run_onnxruntime

        reference = run_onnxruntime(payload["model_path"], feeds, threads=payload["threads"])
        max_abs, max_rel = output_diff(reference, outputs)
    except Exception as exc:  # noqa: BLE001 - the comparison is a check, not the measurement
        logger.warning("openvino: no ONNX Runtime reference (%s)", exc)

    return Measurement.from_samples(
        RUNTIME, samples_ms,
        memory_mb=max(rss_after - rss_before, 1) / 2**20, memory_method="rss-growth",
        runs_per_sample=runs, measure_s=measure_s, threads=payload["threads"],
        compile_s=compile_s, max_abs_diff_vs_ort=max_abs, max_rel_diff_vs_ort=max_rel,
        others_cpu_share=watch.result.others_cpu_share,
    ).model_dump()
