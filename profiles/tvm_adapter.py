"""TVM (Relax, untuned) behind one adapter.

- `tvm` is imported only inside functions, and compiling and measuring happen in a spawned child
  process: a crash in a compiler pass becomes a `TvmCompileError` with the stage and the tail of
  the child's log, not a dead parent.
- The config is explicit (`MeasureConfig`, the hardware class's target); nothing is read from
  the environment.
- TVM's own output (C++ logs, Python warnings) goes to the child's log file; the parent logs it
  at DEBUG on `profiles.tvm_adapter` and quotes its tail in errors.

The compile path is the one TVM 0.27 documents for an untuned model: `from_onnx` (weights as
constants) -> `relax.get_pipeline("zero")` (legalize, fold constants, fuse) -> the "default"
lowering pipeline (memory planning, VM lowering) -> `relax.build`. Default TIR schedules, so the
latency is TVM *untuned*; `tvm-tuned` (MetaSchedule) is a later issue.
"""

from __future__ import annotations

import logging
import platform
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import onnx

from profiles.child import ChildFailure, run_in_child
from profiles.contention import CpuWatch
from profiles.hardware import HardwareClass
from profiles.measure import (
    MeasureConfig,
    Measurement,
    NotMeasurableHereError,
    output_diff,
    warm_up_and_plan,
)
from profiles.onnx_prep import (
    ensure_prepared,
    input_specs,
    model_name,
    sample_feeds,
    save_model,
)

logger = logging.getLogger(__name__)


class TvmError(RuntimeError):
    """Base class of the TVM adapter's errors."""


class TvmImportError(TvmError):
    """TVM could not import the ONNX model; `ops` names the operators it lacks, when known."""

    def __init__(self, message: str, model: str, ops: list[str] | None = None):
        self.model = model
        self.ops = sorted(set(ops or []))
        super().__init__(message)


class TvmCompileError(TvmError):
    """Compiling the imported module failed or crashed."""


class TvmRunError(TvmError):
    """The compiled module failed, crashed or timed out while running."""


def tvm_version() -> str:
    """The installed TVM version, read from package metadata (no import of tvm)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-tvm")
    except PackageNotFoundError:
        return "unknown"


def _local_arch() -> str:
    return "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def check_runnable_here(hardware: HardwareClass) -> None:
    """Raise `NotMeasurableHereError` unless a TVM build for `hardware` can run on this CPU."""
    target = hardware.tvm_target
    if target is None:
        raise NotMeasurableHereError(f"{hardware.name}: TVM has no target for this hardware")
    if hardware.kind != "cpu" or target.get("kind") != "llvm":
        raise NotMeasurableHereError(
            f"{hardware.name}: a {target.get('kind')} target cannot run on this machine's CPU"
        )
    if hardware.arch != _local_arch():
        raise NotMeasurableHereError(
            f"{hardware.name}: built for {hardware.arch}, this machine is {_local_arch()}"
        )


def measure_tvm(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, list[int]],
    hardware: HardwareClass,
    config: MeasureConfig | None = None,
    *,
    check_against_ort: bool = True,
    sample_inputs: str | Path | None = None,
) -> Measurement:
    """Compile `model` with TVM for `hardware.tvm_target` and measure it on this machine.

    The hardware class must be runnable here (an llvm target of this CPU's architecture); its
    `mcpu` is dropped when this LLVM does not know it (the target used is in the result). With
    `check_against_ort`, the TVM outputs are compared with ONNX Runtime's on the same random
    input (`max_abs_diff_vs_ort`, `max_rel_diff_vs_ort`)."""
    config = config or MeasureConfig()
    check_runnable_here(hardware)
    model = ensure_prepared(model, input_shapes)
    name = model_name(model)
    with tempfile.TemporaryDirectory(prefix="tvm-measure-") as tmp:
        path = save_model(model, Path(tmp) / "model.onnx")
        log_path = Path(tmp) / "child.log"
        payload = {
            "model_path": str(path),
            "inputs": input_specs(model),
            "target": dict(hardware.tvm_target or {}),
            "config": config.model_dump(),
            "check_against_ort": check_against_ort,
            "ort_threads": hardware.cores,
            "sample_inputs": str(sample_inputs) if sample_inputs else None,
        }
        try:
            result = run_in_child("profiles.tvm_adapter", "_child_measure", payload,
                                  timeout_s=config.timeout_s, log_path=log_path,
                                  first_stage="import")
        except ChildFailure as exc:
            raise typed_error(exc, name) from exc
        finally:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            if log.strip():
                logger.debug("TVM child log for %s:\n%s", name, log.rstrip())
    for warning in result.pop("warnings", []):
        logger.debug("TVM warning for %s: %s", name, warning)
    if result.get("target_note"):
        logger.warning("%s: %s", hardware.name, result["target_note"])
    result.pop("target_note", None)
    return Measurement.model_validate(result)


def typed_error(exc: ChildFailure, name: str) -> TvmError:
    """The adapter's typed error for a failed TVM child (import, compile or run) of model `name`."""
    detail = exc.message
    if exc.error_type is not None:
        detail = f"{exc.error_type}: {exc.message}"
    if exc.log_tail and exc.error_type is None:
        detail += f"\n--- last lines of the TVM log ---\n{exc.log_tail}"
    if exc.stage == "import":
        ops = exc.detail.get("ops") or _ops_from_message(exc.message)
        if ops:
            return TvmImportError(
                f"{name}: operator(s) not supported by TVM's ONNX importer: {', '.join(sorted(ops))}",
                name, ops,
            )
        return TvmImportError(f"{name}: TVM could not import the model: {detail}", name)
    if exc.stage == "compile":
        return TvmCompileError(f"{name}: TVM compile failed: {detail}")
    return TvmRunError(f"{name}: TVM failed during {exc.stage}: {detail}")


def _ops_from_message(message: str) -> list[str]:
    match = re.search(r"not supported for frontend ONNX: (.*)", message)
    return [op.strip() for op in match.group(1).split(",")] if match else []


# --- the child process ------------------------------------------------------------------------

def resolve_target(target_dict: dict):
    """A `tvm.target.Target` for the dict, dropping an `mcpu` this LLVM does not know.

    Returns (target, note); note says what was changed, or is empty."""
    import tvm
    from tvm.target import codegen

    target_dict = dict(target_dict)
    note = ""
    mcpu = target_dict.get("mcpu")
    if mcpu and target_dict.get("kind") == "llvm":
        triple = target_dict.get("mtriple") or codegen.llvm_get_system_triple()
        if not codegen.llvm_is_valid_cpu(mcpu, triple):
            target_dict.pop("mcpu")
            note = f"LLVM {codegen.llvm_version_major()} does not know mcpu {mcpu!r}; compiled without it"
    try:
        return tvm.target.Target(target_dict), note
    except Exception:  # noqa: BLE001 - an attribute this TVM rejects: keep kind and cores only
        fallback = {k: v for k, v in target_dict.items() if k in ("kind", "num-cores", "mtriple")}
        return tvm.target.Target(fallback), f"target {target_dict} rejected; used {fallback}"


def constant_and_storage_bytes(mod) -> tuple[int, int]:
    """(bytes of tensor constants, bytes of `vm.alloc_storage` blocks) in a lowered module.

    After `StaticPlanBlockMemory` every intermediate and output lives in one of the storage
    blocks the plan allocates (blocks are reused between tensors whose lifetimes do not
    overlap), so their sum is what one inference allocates besides the weights."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprVisitor, visitor

    sizes = {"const": 0, "storage": 0}
    seen: set[int] = set()

    @visitor
    class _Walker(PyExprVisitor):
        def visit_generic_const_(self, op):  # TVM 0.27 name (was visit_constant_)
            value = op.value
            if isinstance(value, tvm.runtime.Tensor) and hash(value) not in seen:
                seen.add(hash(value))
                n = 1
                for d in value.shape:
                    n *= int(d)
                sizes["const"] += n * ((value.dtype.bits * value.dtype.lanes + 7) // 8)

        def visit_call_(self, op):
            if isinstance(op.op, tvm.ir.Op) and op.op.name == "relax.vm.alloc_storage":
                shape = op.args[0]
                if isinstance(shape, relax.ShapeExpr):
                    n = 1
                    for v in shape.values:
                        n *= int(v)
                    sizes["storage"] += n
            for arg in op.args:
                self.visit_expr(arg)

    walker = _Walker()
    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            walker.visit_expr(func)
    return sizes["const"], sizes["storage"]


def to_numpy_list(out) -> list:
    """A VM's output (a tensor or nested tuples of them) as a flat list of numpy arrays."""
    import tvm

    if isinstance(out, tvm.runtime.Tensor):
        return [out.numpy()]
    result = []
    for item in out:
        result.extend(to_numpy_list(item))
    return result


def _child_measure(payload: dict, report) -> dict:
    """In the child: import, compile, warm up, sample with `time_evaluator`, check against ORT."""
    import warnings

    config = MeasureConfig.model_validate(payload["config"])
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        report("import")
        import tvm
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx

        t0 = time.perf_counter()  # compile time: ONNX import to executable, not `import tvm`

        model = onnx.load(payload["model_path"])
        inputs = payload["inputs"]
        try:
            from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

            known = set(_get_convert_map()) | {"If", "Constant"}
            missing = sorted({n.op_type for n in model.graph.node if n.op_type not in known})
        except ImportError:  # private helper moved: rely on the importer's own message
            missing = []
        if missing:
            error = RuntimeError(f"not supported for frontend ONNX: {', '.join(missing)}")
            error.detail = {"ops": missing}  # type: ignore[attr-defined]
            raise error
        mod = from_onnx(
            model,
            shape_dict={k: list(v[0]) for k, v in inputs.items()},
            dtype_dict={k: v[1] for k, v in inputs.items()},
        )

        report("compile")
        target, note = resolve_target(payload["target"])
        with target:
            mod = relax.get_pipeline("zero")(mod)
            lowered = relax.get_pipeline("default")(mod)
        const_bytes, storage_bytes = constant_and_storage_bytes(lowered)
        executable = relax.build(lowered, target, relax_pipeline=None)
        compile_s = time.perf_counter() - t0

        report("load")
        dev = tvm.cpu()
        vm = relax.VirtualMachine(executable, dev)
        feeds = sample_feeds(inputs, config.seed, payload.get("sample_inputs"))
        args = [tvm.runtime.tensor(feeds[name], dev) for name in inputs]
        main = vm["main"]

        report("warm-up")
        started = time.perf_counter()
        samples, runs = warm_up_and_plan(lambda: main(*args), config, discarded_later=1)

        report("measure")
        timer = vm.time_evaluator("main", dev, number=runs, repeat=samples, min_repeat_ms=0)
        with CpuWatch() as watch:
            samples_ms = [t * 1000.0 for t in timer(*args).results]
        measure_s = time.perf_counter() - started

        diff_abs = diff_rel = None
        if payload["check_against_ort"]:
            report("check")
            from profiles.ort_adapter import run_onnxruntime

            reference = run_onnxruntime(payload["model_path"], feeds, payload["ort_threads"])
            diff_abs, diff_rel = output_diff(reference, to_numpy_list(main(*args)))
    caught = [f"{r.category.__name__}: {r.message}" for r in records]

    result = Measurement.from_samples(
        "tvm", samples_ms,
        memory_mb=max(const_bytes + storage_bytes, 1) / 2**20, memory_method="tvm-plan",
        runs_per_sample=runs, measure_s=measure_s, compile_s=compile_s,
        target=dict(payload["target"]) if not note else target_json(target),
        max_abs_diff_vs_ort=diff_abs, max_rel_diff_vs_ort=diff_rel,
        others_cpu_share=watch.result.others_cpu_share,
    ).model_dump()
    result["warnings"] = caught
    result["target_note"] = note
    return result


def target_json(target) -> dict:
    """A `tvm.target.Target` as its JSON dict (the form `HardwareClass.tvm_target` uses)."""
    import json

    try:
        return json.loads(str(target))
    except ValueError:
        return {"kind": str(target)}
