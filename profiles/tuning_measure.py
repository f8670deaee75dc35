"""Measure a tuned model here: compile it with its class's tuning database applied and time it
with the `MeasureConfig` protocol of `profiles.tvm_adapter`, in a child process.

Compiling is the `zero` pipeline inside the database's scope (`MetaScheduleApplyDatabase`
after fusion), default lowering, `relax.build` (`profiles.tvm_compile.compile_module`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from profiles.child import ChildFailure, run_in_child
from profiles.hardware import HardwareClass
from profiles.measure import MeasureConfig, Measurement, output_diff
from profiles.onnx_prep import ensure_prepared, input_specs, model_name, random_feeds, save_model
from profiles.rows import TVM_TUNED
from profiles.tuning_db import tuning_dir
from profiles.tvm_adapter import check_runnable_here, target_json, to_numpy_list, typed_error
from profiles.tvm_compile import compile_module, light_tensor_intrin, time_vm

logger = logging.getLogger(__name__)


def measure_tuned(model, input_shapes: Mapping[str, list[int]], hardware: HardwareClass,
                  config: MeasureConfig | None = None, *, database: Path | str | None = None,
                  check_against_ort: bool = True,
                  on_stage: Callable[[str], None] | None = None) -> Measurement:
    """Compile `model` with `hardware`'s tuning database applied and measure it here, with the
    same protocol (`MeasureConfig`, warm-up, time_evaluator samples, ORT check) as
    `profiles.tvm_adapter.measure_tvm`. Raises the adapter's typed errors."""
    config = config or MeasureConfig()
    check_runnable_here(hardware)
    model = ensure_prepared(model, input_shapes)
    name = model_name(model)
    database = Path(database) if database is not None else tuning_dir(hardware.name)
    with tempfile.TemporaryDirectory(prefix="tvm-tuned-") as tmp:
        path = save_model(model, Path(tmp) / "model.onnx")
        log_path = Path(tmp) / "child.log"
        payload = {"model_path": str(path), "inputs": input_specs(model),
                   "target": dict(hardware.tvm_target or {}), "arch": hardware.arch,
                   "database": str(database), "config": config.model_dump(),
                   "check_against_ort": check_against_ort, "ort_threads": hardware.cores}

        def on_event(event: dict) -> None:
            if on_stage is not None and event.get("event") not in (None, "child"):
                on_stage(str(event["event"]))

        try:
            result = run_in_child(__name__, "child_measure_tuned", payload,
                                  timeout_s=config.timeout_s, log_path=log_path,
                                  on_event=on_event)
        except ChildFailure as exc:
            raise typed_error(exc, name) from exc
    if result.pop("target_note", ""):
        logger.warning("%s: target changed for this LLVM", hardware.name)
    return Measurement.model_validate(result)


def child_measure_tuned(payload: dict, report) -> dict:
    """In the child: compile with the database, warm up, sample, check against ORT."""
    import warnings

    light_tensor_intrin(payload["arch"])
    config = MeasureConfig.model_validate(payload["config"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report({"event": "compile", "stage": "compile"})
        import tvm
        from tvm import relax

        t0 = time.perf_counter()
        executable, const_bytes, storage_bytes, target, note = compile_module(
            payload["model_path"], payload["inputs"], payload["target"], payload["database"])
        compile_s = time.perf_counter() - t0
        report({"event": "measure", "stage": "measure"})
        dev = tvm.cpu()
        vm = relax.VirtualMachine(executable, dev)
        inputs = payload["inputs"]
        feeds = random_feeds(inputs, config.seed)
        args = [tvm.runtime.tensor(feeds[name], dev) for name in inputs]
        samples_ms, runs, measure_s = time_vm(vm, dev, args, config)
        diff_abs = diff_rel = None
        if payload["check_against_ort"]:
            report({"event": "check", "stage": "check"})
            from profiles.ort_adapter import run_onnxruntime

            reference = run_onnxruntime(payload["model_path"], feeds, payload["ort_threads"])
            diff_abs, diff_rel = output_diff(reference, to_numpy_list(vm["main"](*args)))
    result = Measurement.from_samples(
        TVM_TUNED, samples_ms,
        memory_mb=max(const_bytes + storage_bytes, 1) / 2**20, memory_method="tvm-plan",
        runs_per_sample=runs, measure_s=measure_s, compile_s=compile_s,
        target=dict(payload["target"]) if not note else target_json(target),
        max_abs_diff_vs_ort=diff_abs, max_rel_diff_vs_ort=diff_rel,
    ).model_dump()
    result["target_note"] = note
    return result
