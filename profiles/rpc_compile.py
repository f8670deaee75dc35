"""Compile a model for a remote device: its target, linked by the class's (cross) compiler, in a
child process. Natively for this machine's architecture, with `aarch64-linux-gnu-gcc` (Debian
`gcc-aarch64-linux-gnu`) for aarch64, or the remote config's `cc`."""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from profiles.child import ChildFailure, run_in_child
from profiles.hardware import HardwareClass
from profiles.onnx_prep import ensure_prepared, input_specs, model_name, save_model
from profiles.tvm_adapter import target_json, typed_error
from profiles.tvm_compile import compile_module, light_tensor_intrin

AARCH64_CC = "aarch64-linux-gnu-gcc"


def _local_arch() -> str:
    return "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def compiler_for(hardware: HardwareClass, override: str | None = None) -> str | None:
    """The compiler that links a library for `hardware` (None: TVM's default, the host's cc)."""
    if override:
        return override
    if hardware.arch == _local_arch():
        return None
    if hardware.arch == "aarch64":
        return AARCH64_CC
    raise ValueError(f"{hardware.name}: no cross compiler known for {hardware.arch}; "
                     "set `cc` for this device in the remote config")


def check_compiler(cc: str | None) -> None:
    """Raise FileNotFoundError naming the Debian package when the linker is missing."""
    if cc is not None and shutil.which(cc) is None:
        hint = " (Debian: apt-get install gcc-aarch64-linux-gnu)" if cc == AARCH64_CC else ""
        raise FileNotFoundError(f"cross compiler {cc} not found{hint}")


def export_library(executable, path: Path, cc: str | None) -> Path:
    """`executable.export_library(path)`, linked by `cc` when cross compiling."""
    if cc is None:
        executable.export_library(str(path))
    else:
        from tvm.support import cc as tvm_cc

        executable.export_library(str(path), fcompile=tvm_cc.cross_compiler(cc))
    return path


def compile_for_device(model, input_shapes: Mapping[str, list[int]], hardware: HardwareClass,
                       out_dir: Path, *, cc: str | None = None, database: Path | None = None,
                       timeout_s: float = 600.0) -> dict:
    """Compile a (prepared) model for `hardware`'s target and link it as a shared library.

    Runs in a child; returns {"lib": path, "memory_mb", "compile_s", "target"}. With `database`
    the tuning database is applied (a `tvm-tuned` library). Raises the TVM adapter's typed
    errors, or FileNotFoundError when the cross compiler is missing."""
    check_compiler(cc)
    model = ensure_prepared(model, input_shapes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = save_model(model, out_dir / "model.onnx")
    payload = {"model_path": str(model_path), "inputs": input_specs(model),
               "target": dict(hardware.tvm_target or {}), "arch": hardware.arch, "cc": cc,
               "database": str(database) if database else None,
               "lib_path": str(out_dir / "model.so")}
    try:
        return run_in_child(__name__, "child_compile", payload, timeout_s=timeout_s,
                            log_path=out_dir / "compile.log", first_stage="import")
    except ChildFailure as exc:
        raise typed_error(exc, model_name(model)) from exc
    finally:
        model_path.unlink(missing_ok=True)


def child_compile(payload: dict, report) -> dict:
    """In the child: import, compile (with the database if any), link for the device."""
    light_tensor_intrin(payload["arch"])
    report("import")
    t0 = time.perf_counter()
    report("compile")
    executable, const_bytes, storage_bytes, target, note = compile_module(
        payload["model_path"], payload["inputs"], payload["target"], payload["database"])
    report("link")
    export_library(executable, Path(payload["lib_path"]), payload["cc"])
    return {"lib": payload["lib_path"], "memory_mb": max(const_bytes + storage_bytes, 1) / 2**20,
            "compile_s": time.perf_counter() - t0,
            "target": dict(payload["target"]) if not note else target_json(target)}
