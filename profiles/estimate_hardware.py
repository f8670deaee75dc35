"""What the calibrated estimator needs to know about a hardware class beyond its peaks.

Three things decide how a fit made on this machine carries over to another CPU class:

- **How threads scale at batch 1.** A batch-1 inference splits each kernel over the cores, and
  the split is not free (synchronisation, a serial tail, small kernels). The estimator takes
  Amdahl's form: `n` cores run `speedup(n) = n / (1 + s·(n − 1))` times faster than one, with a
  serial fraction `s = SERIAL_FRACTION`. The figure is the median of the speed-ups published
  for 1 thread vs 2 or 4 threads of the same device and model (MobileNetV2, ResNet-18 and
  ResNet-50 in ncnn's benchmark README, Tencent/ncnn@08c2dacb, benchmark/README.md): AMD Ryzen
  V1605B (2 and 4 threads), Rockchip RK3288, Snapdragon 410, i.MX7 Dual and the iPhone 5S —
  devices that are *not* in docs/published_latency.csv, so the rows the estimator is checked
  against did not set it. The 16 speed-ups imply s between 0.07 and 0.50, median 0.16
  (docs/profiles.md lists them). Perfect scaling (s = 0) made 8- to 18-core x86 estimates
  about twice too fast (issue 14).
- **How much cache the cores a piece uses have.** `cache_mb`: the private caches of those cores
  plus their share of the shared last level (a cloud slice gets its fair share of the socket's L3,
  as for bandwidth; a board or phone owns its shared cache). The roofline serves a kernel's bytes
  from cache when they fit and from DRAM otherwise (`profiles.estimate_model`): a bandwidth
  efficiency above 1 fitted on this machine's large L3 must not carry over to a Pi's 1 MB.
- **How fast one core runs host code.** Fixed costs (a runtime's per-call and per-kernel
  dispatch) are scalar code on one core; they scale with `core_gflops` (one core's fp32 peak:
  wider vector units come with wider, faster cores — an assumption, stated as such).

Cache sizes are per microarchitecture (the TVM target's `mcpu`) with their sources; a class
whose cache is not published gets `UNKNOWN_CACHE_MB_PER_CORE` per core (assumed, and small, so
such a class is never credited with a cache it may not have).
"""

from __future__ import annotations

from dataclasses import dataclass

from profiles.hardware_class import HardwareClass

SERIAL_FRACTION = 0.16
UNKNOWN_CACHE_MB_PER_CORE = 0.25  # assumed: the Pi 4's 1 MB L2 shared by 4 cores, the smallest known


@dataclass(frozen=True)
class CacheFacts:
    """Caches of one microarchitecture as sold in the classes that use it."""

    private_mb: float  # per core the piece uses (per vCPU where two vCPUs share a core)
    shared_mb: float  # one shared last-level cache (an L3, a cluster L2, a system-level cache)
    shared_by: int | None  # vCPUs sharing it on a multi-tenant host (fair share); None: a board owns it
    source: str


CACHES: dict[str, CacheFacts] = {
    "znver4": CacheFacts(1.0, 32.0, 8, "AMD EPYC 9004 (Genoa): 1 MB L2 per core, 32 MB L3 per "
                                        "8-core CCD (AMD EPYC 9004 product brief); one core per vCPU"),
    "znver3": CacheFacts(0.25, 32.0, 16, "AMD EPYC 7003 (Milan): 512 KB L2 per core, 32 MB L3 per "
                                         "8-core CCD (AMD EPYC 7003 product brief); 2 vCPUs per core"),
    "sapphirerapids": CacheFacts(1.0, 1.875, 2, "Xeon Sapphire Rapids: 2 MB L2 per core, 1.875 MB L3 "
                                                "per core (Intel ARK, Xeon Platinum 8480+); 2 vCPUs per core"),
    "icelake-server": CacheFacts(0.625, 1.5, 2, "Xeon Ice Lake-SP: 1.25 MB L2 per core, 1.5 MB L3 per "
                                                 "core (Intel ARK, Xeon Platinum 8375C); 2 vCPUs per core"),
    "skylake-avx512": CacheFacts(0.5, 1.375, 2, "Xeon Skylake-SP: 1 MB L2 per core, 1.375 MB L3 per "
                                                 "core (Intel ARK, Xeon Platinum 8175M); 2 vCPUs per core"),
    "neoverse-n1": CacheFacts(1.0, 32.0, 80, "Ampere Altra: 1 MB L2 per core, 32 MB system-level "
                                             "cache for 80 cores (Ampere Altra product brief)"),
    "neoverse-v1": CacheFacts(1.0, 32.0, 64, "AWS Graviton3: 1 MB L2 per core, 32 MB L3 for 64 cores "
                                             "(AWS Graviton3 launch material)"),
    "neoverse-v2": CacheFacts(2.0, 36.0, 96, "AWS Graviton4: 2 MB L2 per core, 36 MB L3 for 96 cores "
                                             "(AWS Graviton4 launch material)"),
    "cortex-a72": CacheFacts(0.0, 1.0, None, "Raspberry Pi 4 (BCM2711): 1 MB L2 shared by the 4 cores, "
                                             "no L3 (raspberrypi.com product brief)"),
    "cortex-a76": CacheFacts(0.5, 2.0, None, "Raspberry Pi 5 (BCM2712): 512 KB L2 per core, 2 MB shared "
                                             "L3 (raspberrypi.com product brief)"),
    "gracemont": CacheFacts(0.0, 8.0, None, "Intel N100: 2 MB L2 shared by the 4-core module + 6 MB L3 "
                                            "(ark.intel.com, Intel Processor N100)"),
    "meteorlake": CacheFacts(2.0, 24.0, None, "Intel Core Ultra 7 155H: 2 MB L2 per P-core, 24 MB L3 "
                                              "(ark.intel.com)"),
}


def speedup(cores: int, serial_fraction: float = SERIAL_FRACTION) -> float:
    """How many times faster `cores` cores run a batch-1 kernel than one (Amdahl)."""
    return cores / (1.0 + serial_fraction * (cores - 1))


def core_gflops(hardware: HardwareClass) -> float:
    """One core's (vCPU's) fp32 peak: the estimator's measure of how fast it runs host code."""
    return hardware.peak_gflops / hardware.cores


def microarch(hardware: HardwareClass) -> str | None:
    target = hardware.tvm_target or {}
    return target.get("mcpu") if isinstance(target, dict) else None


def cache_facts(hardware: HardwareClass) -> CacheFacts | None:
    if hardware.kind != "cpu":
        return None
    return CACHES.get(microarch(hardware) or "")


def cache_mb(hardware: HardwareClass, cores: int | None = None) -> float:
    """Cache the `cores` (default: all the class's) cores of a piece can keep data in, MB."""
    cores = hardware.cores if cores is None else cores
    facts = cache_facts(hardware)
    if facts is None:
        return UNKNOWN_CACHE_MB_PER_CORE * cores
    if facts.shared_by is None:  # a board: the piece has the whole shared cache
        return facts.private_mb * cores + facts.shared_mb
    return facts.private_mb * cores + facts.shared_mb * cores / facts.shared_by


def cache_source(hardware: HardwareClass) -> str:
    facts = cache_facts(hardware)
    if facts is None:
        return (f"cache not published for {hardware.name}: {UNKNOWN_CACHE_MB_PER_CORE:g} MB per core "
                "assumed")
    return facts.source
