"""What a hardware class is (`HardwareClass`) and the helpers that build the built-in ones.

Kept apart from `profiles.hardware` (the catalog and this machine's class) so the catalog's data
module can build classes without importing the catalog that loads it.
"""

from __future__ import annotations

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


def cpu_class(name, arch, cores, target, ghz, flops_per_cycle, bw, sources, kind="cpu"):
    """A CPU class whose fp32 peak is cores x GHz x FLOPs per cycle."""
    return HardwareClass(
        name=name, kind=kind, arch=arch, cores=cores, tvm_target=target,
        peak_gflops=round(cores * ghz * flops_per_cycle, 1), mem_bandwidth_gbs=bw,
        sources=sources,
    )


def x86_target(mcpu: str, cores: int) -> dict:
    return {"kind": "llvm", "mcpu": mcpu, "num-cores": cores}


def arm_target(mcpu: str, cores: int) -> dict:
    return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": mcpu, "num-cores": cores}
