"""Compiling a prepared piece with TVM for its hardware class: a shared library per target.

CPU targets go through `profiles.rpc_compile.compile_for_device` (child process; aarch64 linked
with `aarch64-linux-gnu-gcc`; a `tvm-tuned` build applies the class's tuning database). GPU
(CUDA) targets need `tvm.s_tir.dlight`'s default GPU schedules before `relax.build`, which the
profiles' compiler does not apply; they are compiled here, in a child too, from the profiles'
public pieces (`import_model`, `export_library`). Libraries are cached by content under
`cache_root()/export/`, so a second export copies instead of compiling.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from placement.export.errors import ExportError

COMPILE_TIMEOUT_S = 1800.0


def library_key(prepared_digest: str, target: dict | None, runtime: str, database_tag: str) -> str:
    from profiles.tvm_adapter import tvm_version

    fields = {"model": prepared_digest, "target": target, "runtime": runtime,
              "database": database_tag, "tvm": tvm_version()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def tuning_database(hardware: str, runtime: str) -> tuple[Path | None, str]:
    """(database dir, tag for the cache key); None when untuned or when no database exists."""
    if runtime != "tvm-tuned":
        return None, ""
    from profiles.tuning_db import TuningDatabase

    db = TuningDatabase.for_hardware(hardware)
    if not db.exists():
        return None, "missing"
    stamp = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (db.workload_path, db.record_path)
             if p.exists()]
    return db.directory, ",".join(stamp)


def compile_library(prepared, input_shapes: dict, hardware: str, runtime: str, dest: Path) -> dict:
    """Compile `prepared` (an ONNX ModelProto) for `hardware` and write the library to `dest`.

    Returns {"target", "cross_compiler", "tuning_database", "cached", "note"}."""
    from profiles.hardware import get_hardware
    from profiles.onnx_prep import model_digest
    from profiles.paths import cache_root
    from profiles.rpc_compile import check_compiler, compiler_for

    hw = get_hardware(hardware)
    if not hw.tvm_target:
        raise ExportError(f"{hardware}: no TVM target for this hardware class; plan it with onnxruntime")
    database, db_tag = tuning_database(hardware, runtime)
    note = ("no tuning database for this class here: compiled with default schedules"
            if runtime == "tvm-tuned" and database is None else "")
    try:
        cc = compiler_for(hw)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    key = library_key(model_digest(prepared), hw.tvm_target, runtime, db_tag)
    cached = cache_root() / "export" / "lib" / key / "model.so"
    info = {"target": dict(hw.tvm_target), "cross_compiler": cc,
            "tuning_database": str(database) if database else None, "note": note}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    info_path = cached.with_suffix(".json")
    if cached.is_file() and info_path.is_file():
        shutil.copyfile(cached, dest)
        return {**json.loads(info_path.read_text()), "cached": True}
    try:
        check_compiler(cc)
    except FileNotFoundError as exc:
        raise ExportError(f"{hardware}: {exc}") from None
    cached.parent.mkdir(parents=True, exist_ok=True)
    # compile into a fresh folder, then move the library into place: a killed run caches nothing
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cached.parent))
    try:
        if hw.kind == "gpu":
            _compile_gpu(prepared, hw, cc, work)
        else:
            info["target"] = _compile_cpu(prepared, input_shapes, hw, cc, database, work) or info["target"]
        info_path.write_text(json.dumps(info, sort_keys=True))
        os.replace(work / "model.so", cached)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.copyfile(cached, dest)
    return {**info, "cached": False}


def _compile_cpu(prepared, input_shapes, hw, cc, database, work: Path) -> dict | None:
    from profiles.rpc_compile import compile_for_device
    from profiles.tvm_adapter import TvmError

    try:
        result = compile_for_device(prepared, input_shapes, hw, work, cc=cc, database=database,
                                    timeout_s=COMPILE_TIMEOUT_S)
    except TvmError as exc:
        raise ExportError(f"{prepared.graph.name}: TVM could not compile it for {hw.name}: "
                          f"{str(exc).splitlines()[0]}") from None
    return result.get("target")


def _compile_gpu(prepared, hw, cc: str | None, work: Path) -> None:
    from profiles.child import ChildFailure, run_in_child
    from profiles.onnx_prep import input_specs, save_model

    model_path = save_model(prepared, work / "model.onnx")
    payload = {"model_path": str(model_path), "inputs": input_specs(prepared),
               "target": dict(hw.tvm_target), "cc": cc, "lib_path": str(work / "model.so")}
    try:
        run_in_child(__name__, "child_compile_gpu", payload, timeout_s=COMPILE_TIMEOUT_S,
                     log_path=work / "compile.log", first_stage="import")
    except ChildFailure as exc:
        raise ExportError(f"{prepared.graph.name}: TVM could not compile it for {hw.name} "
                          f"(stage {exc.stage}): {str(exc).splitlines()[0] if str(exc) else exc.error_type}") from None
    finally:
        model_path.unlink(missing_ok=True)


def child_compile_gpu(payload: dict, report) -> dict:
    """In the child: import, apply dlight's default GPU schedules, build, link."""
    from tvm import relax
    from tvm.s_tir import dlight as dl

    from profiles.rpc_compile import export_library
    from profiles.tvm_compile import import_model

    report("import")
    mod, target, _note = import_model(payload["model_path"], payload["inputs"], payload["target"])
    report("compile")
    with target:
        mod = relax.get_pipeline("zero")(mod)
        mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                      dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
    executable = relax.build(mod, target)
    report("link")
    export_library(executable, Path(payload["lib_path"]), payload["cc"])
    return {"lib": payload["lib_path"]}
