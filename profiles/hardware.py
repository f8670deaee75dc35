"""Hardware classes: one kind of processor the profiles talk about.

Many offers share one class (every c7a.large in every region is `x86-zen4-2c`), so a
measurement or estimate made once serves them all. Peak figures carry their sources because
the estimator divides by them: a wrong peak is a wrong plan.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

from profiles.hardware_class import HardwareClass

_HARDWARE: list[HardwareClass] = []


def register(hardware: HardwareClass) -> HardwareClass:
    """Add a class to the catalog; a new backend is one call here, not an edit in five places."""
    if any(h.name == hardware.name for h in _HARDWARE):
        raise ValueError(f"hardware class {hardware.name!r} registered twice")
    _HARDWARE.append(hardware)
    hardware_catalog.cache_clear()
    return hardware


@lru_cache(maxsize=1)
def hardware_catalog() -> dict[str, HardwareClass]:
    _load_builtin()
    return {h.name: h for h in _HARDWARE}


def get_hardware(name: str) -> HardwareClass:
    catalog = hardware_catalog()
    if name not in catalog:
        raise KeyError(f"unknown hardware class {name!r}")
    return catalog[name]


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from profiles.hardware_catalog_data import BUILTIN

    for hardware in BUILTIN:
        register(hardware)


# --- this machine ---------------------------------------------------------------------------

def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if ":" in line:
                    key, value = line.split(":", 1)
                    info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def local_microarch() -> str:
    """A short microarchitecture name for this CPU, matching the catalog's class names."""
    info = _cpuinfo()
    vendor = info.get("vendor_id", "")
    family = int(info.get("cpu family", "0") or 0)
    flags = set(info.get("flags", "").split())
    if platform.machine() in ("aarch64", "arm64"):
        part = info.get("CPU part", "").lower()
        return {"0xd40": "neoverse-v1", "0xd4f": "neoverse-v2", "0xd0c": "neoverse-n1",
                "0xd0b": "cortex-a76", "0xd08": "cortex-a72"}.get(part, "arm64")
    if vendor == "AuthenticAMD":
        if family == 0x1A:
            return "zen5"
        if family == 0x19:
            return "zen4" if "avx512f" in flags else "zen3"
        if family == 0x17:
            return "zen2"
    if vendor == "GenuineIntel":
        if "amx_tile" in flags:
            return "spr"
        if "avx512f" in flags:
            return "icx"
    return "x86-avx2" if "avx2" in flags else "x86"


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_hardware_name() -> str:
    """The hardware class of this machine: measurements made here are rows of this class."""
    arch = "arm" if platform.machine() in ("aarch64", "arm64") else "x86"
    return f"{arch}-{local_microarch()}-{local_cores()}c"


def local_hardware() -> HardwareClass:
    """This machine's class from the catalog, or one built from what /proc/cpuinfo says."""
    name = local_hardware_name()
    catalog = hardware_catalog()
    if name in catalog:
        return catalog[name]
    cores = local_cores()
    peaks = measured_peaks(name, cores)
    return register(HardwareClass(
        name=name, kind="cpu",
        arch="aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64",
        cores=cores, tvm_target={"kind": "llvm", "num-cores": cores},
        peak_gflops=peaks["peak_gflops"], mem_bandwidth_gbs=peaks["mem_bandwidth_gbs"],
        sources=[f"not in the catalog: peaks measured on this machine on {peaks['measured_at']}: "
                 f"fp32 GEMM {peaks['gemm_n']}x{peaks['gemm_n']} in ONNX Runtime (MLAS) on {cores} "
                 f"threads (best of {peaks['runs']}), and a {peaks['copy_mb']} MB array copy "
                 "(read + write); both are what software reaches, a lower bound of the datasheet "
                 "peak, so fitted efficiencies are relative to them"],
    ))


def measured_peaks(name: str, cores: int) -> dict:
    """fp32 GEMM rate and memory copy bandwidth of this machine, measured once and kept in the
    cache dir: a CPU the catalog does not know has no datasheet figure to divide by, and an
    assumed clock was 2.7x below what ONNX Runtime reached on a Zen 5 (the fit then pinned every
    efficiency at 1)."""
    import json
    from datetime import UTC, datetime

    import numpy as np

    from profiles.paths import atomic_write_text, cache_root

    path = cache_root() / "hardware" / f"{name}.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("cores") == cores:
            return cached
    except (OSError, ValueError):
        pass
    n, runs, copy_mb = 2048, 5, 256
    session, feeds = _gemm_session(n, cores)
    session.run(None, feeds)  # warm up the thread pool
    best = min(_timed(lambda: session.run(None, feeds)) for _ in range(runs))
    src = np.ones(copy_mb * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    copy_s = min(_timed(lambda: np.copyto(dst, src)) for _ in range(runs))
    peaks = {
        "cores": cores, "gemm_n": n, "runs": runs, "copy_mb": copy_mb,
        "peak_gflops": round(2.0 * n**3 / best / 1e9, 1),
        "mem_bandwidth_gbs": round(2.0 * src.nbytes / copy_s / 1e9, 1),
        "measured_at": datetime.now(UTC).date().isoformat(),
    }
    atomic_write_text(path, json.dumps(peaks))
    return peaks


def _gemm_session(n: int, cores: int):
    """An n x n fp32 MatMul in ONNX Runtime (its MLAS kernels are what reach the highest rate
    on a CPU here; numpy's bundled BLAS reached about half of it on a Zen 5)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, {"x": weight}


def _timed(fn) -> float:
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
