"""Compiling and timing with TVM, shared by the tuner (`profiles.tuning*`) and the RPC runner
(`profiles.rpc*`): ONNX import, compile with a tuning database applied, and the warm-up and
sampling protocol on a local or remote device.

Only called inside child processes (or, for `time_vm`, on an RPC session): TVM is imported
lazily. One TVM 0.27 pitfall is worked around here (measured on a 2-core machine):
`import tvm.s_tir.tensor_intrin` (done by every `TuneContext` and by MetaSchedule's default
build function) takes ~60 s because it parses every CUDA/ROCm/Hexagon intrinsic; for CPU
targets `light_tensor_intrin` loads only the intrinsics of the target's architecture.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from profiles.measure import MeasureConfig
from profiles.tvm_adapter import constant_and_storage_bytes, resolve_target

_INTRIN_MODULES = ("cuda", "rocm", "hexagon", "riscv_cpu", "arm_cpu", "x86")


def light_tensor_intrin(arch: str) -> None:
    """Keep `import tvm.s_tir.tensor_intrin` to the CPU intrinsics of `arch` (x86_64 or aarch64).

    The full import parses every GPU/DSP intrinsic (~60 s on 2 cores); a CPU tuning run only
    needs its own architecture's. Must run before anything imports tensor_intrin; only for
    processes that tune or compile for a CPU target."""
    import sys
    import types

    keep = "x86" if arch == "x86_64" else "arm_cpu"
    for name in _INTRIN_MODULES:
        if name == keep:
            continue
        full = f"tvm.s_tir.tensor_intrin.{name}"
        if full not in sys.modules:
            sys.modules[full] = types.ModuleType(full)


def import_model(model_path: str, inputs: Mapping, target_dict: dict):
    """from_onnx -> zero pipeline's input, and the resolved target."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load(model_path)
    mod = from_onnx(model, shape_dict={k: list(v[0]) for k, v in inputs.items()},
                    dtype_dict={k: v[1] for k, v in inputs.items()})
    target, note = resolve_target(target_dict)
    return mod, target, note


def compile_module(model_path: str, inputs: Mapping, target_dict: dict,
                   database: str | None = None):
    """Compile an ONNX file like `profiles.tvm_adapter`, with a tuning database applied if given.

    Returns (executable, constant bytes, storage bytes, target, note). With `database`, the
    `zero` pipeline runs inside the database's scope, so `MetaScheduleApplyDatabase` replaces
    every fused kernel that has a successful record; the others keep default schedules."""
    from tvm import relax

    mod, target, note = import_model(model_path, inputs, target_dict)
    with target:
        if database:
            from tvm.s_tir import meta_schedule as ms

            db = ms.database.JSONDatabase(work_dir=database, module_equality="structural")
            with db:
                mod = relax.get_pipeline("zero")(mod)
        else:
            mod = relax.get_pipeline("zero")(mod)
        lowered = relax.get_pipeline("default")(mod)
    const_bytes, storage_bytes = constant_and_storage_bytes(lowered)
    executable = relax.build(lowered, target, relax_pipeline=None)
    return executable, const_bytes, storage_bytes, target, note


def time_vm(vm, dev, args, config: MeasureConfig, report=None) -> tuple[list[float], int, float]:
    """Warm up and sample `vm["main"]` per `config`; (samples in ms, runs per sample, seconds).

    Works on a local and on an RPC device alike: warm-up runs are timed by a `time_evaluator`
    on the device (one run each), so an RPC round trip never counts."""
    started = time.perf_counter()
    vm.set_input("main", *args)
    warm = max(1, config.warmup_runs - 1)  # time_evaluator discards its first call itself
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=warm, min_repeat_ms=0)
    last_ms = timer("main").results[-1] * 1000.0
    if last_ms < 50.0:  # short: time a batch of runs lasting >= 5 ms (as `calibrate` does)
        runs = max(1, math.ceil(5.0 / max(last_ms, 1e-4)))
        probe = vm.time_evaluator("invoke_stateful", dev, number=runs, repeat=1, min_repeat_ms=0)
        last_ms = probe("main").results[-1] * 1000.0
    samples, runs = config.plan(last_ms)
    if report is not None:
        report("measure")
    timer = vm.time_evaluator("invoke_stateful", dev, number=runs, repeat=samples, min_repeat_ms=0)
    samples_ms = [t * 1000.0 for t in timer("main").results]
    return samples_ms, runs, time.perf_counter() - started
