"""Hardware classes: one kind of processor the profiles talk about.

Many offers share one class (every c7a.large in every region is `x86-zen4-2c`), so a
measurement or estimate made once serves them all. Peak figures carry their sources because
the estimator divides by them: a wrong peak is a wrong plan.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HardwareClass(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Literal["cpu", "gpu", "npu"]
    arch: Literal["x86_64", "aarch64"]
    cores: int = Field(gt=0, description="cores (or vCPUs) a piece may use")
    tvm_target: dict | None = Field(
        description="TVM target as a JSON dict; None where TVM has no backend (e.g. Inferentia)"
    )
    peak_gflops: float = Field(gt=0, description="fp32 peak of the cores a piece uses")
    mem_bandwidth_gbs: float = Field(gt=0, description="DRAM bandwidth available, GB/s")
    overhead_ms: float = Field(
        default=0.0, ge=0, description="fixed per-inference cost (kernel launch, host copies)"
    )
    sources: list[str] = Field(description="where the peak figures come from")


def _cpu(name, arch, cores, target, ghz, flops_per_cycle, bw, sources, kind="cpu"):
    return HardwareClass(
        name=name, kind=kind, arch=arch, cores=cores, tvm_target=target,
        peak_gflops=round(cores * ghz * flops_per_cycle, 1), mem_bandwidth_gbs=bw,
        sources=sources,
    )


def _x86_target(mcpu: str, cores: int) -> dict:
    return {"kind": "llvm", "mcpu": mcpu, "num-cores": cores}


def _arm_target(mcpu: str, cores: int) -> dict:
    return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": mcpu, "num-cores": cores}


# fp32 FLOPs per cycle per core: 2 FMA pipes x vector lanes x 2.
# Zen 4: 2x256-bit FMA (AVX-512 double-pumped) -> 32; Sapphire Rapids: 2x512-bit FMA -> 64;
# Neoverse V1 (Graviton3): 4x128-bit FMA -> 32; Neoverse V2 (Graviton4): 4x128 -> 32;
# Cortex-A72/A76/A78AE: 2x128-bit FMA -> 16.
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
    from profiles import hardware_catalog_data  # noqa: F401  (registers the built-in classes)


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
    flags = set(_cpuinfo().get("flags", "").split())
    flops_per_cycle = 64 if "avx512f" in flags and local_microarch() in ("spr", "icx") else (
        32 if "avx2" in flags or "avx512f" in flags else 16)
    ghz = 2.5
    return register(HardwareClass(
        name=name, kind="cpu",
        arch="aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64",
        cores=cores, tvm_target={"kind": "llvm", "num-cores": cores},
        peak_gflops=round(cores * ghz * flops_per_cycle, 1), mem_bandwidth_gbs=10.0 * cores,
        sources=[f"derived from /proc/cpuinfo flags, assumed {ghz} GHz: not in the catalog"],
    ))
