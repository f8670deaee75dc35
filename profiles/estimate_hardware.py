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

An accelerator that keeps a model's parameters in on-chip memory and reaches its host over a
link (the Coral Edge TPU) is not a roofline over a DRAM figure at all: its latency is decided by
whether the int8 parameters fit on chip (`OnChipFacts`, `ON_CHIP`; `profiles.estimate_model`
`on_chip_ms` has the model). Its efficiency and per-call cost are derived from published
latencies of models that are *not* among the rows the estimator is checked against.
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


FP32_BYTES = 4  # the kernel statistics count the ONNX model's fp32 weights and activations


@dataclass(frozen=True)
class OnChipFacts:
    """An accelerator that runs a quantised model out of on-chip memory and reaches its host over
    a link (the class's `mem_bandwidth_gbs` is that link's payload rate, its `peak_gflops` the
    int8 peak). One inference (`profiles.estimate_model.on_chip_ms`) takes

        call_ms + I/O bytes / link + int8 ops / (efficiency * peak)
                + max(0, int8 parameter bytes - sram_mb) / link

    parameters beyond the on-chip memory stream over the link on every inference."""

    sram_mb: float  # on-chip memory that caches the parameters, MB (10^6 bytes)
    bytes_per_element: float  # of the deployed (quantised) model; the statistics count fp32
    efficiency: float  # share of the int8 peak its compute reaches
    call_ms: float  # fixed cost per inference (runtime, link round trips), without the I/O bytes
    reference_io_bytes: float  # I/O charged to a piece whose input/output size is unknown (deployed dtype)
    band: float  # multiplicative error band
    source: str


def _line_through(rows: tuple[tuple[str, float, float], ...]) -> tuple[float, float]:
    """(slope ms per GMAC, intercept ms) of the straight line through two (name, GMAC, ms) rows."""
    (_, x0, y0), (_, x1, y1) = rows
    slope = (y1 - y0) / (x1 - x0)
    return slope, y0 - slope * x0


# Coral Edge TPU (USB Accelerator). Published facts:
# - 4 TOPS int8 peak, 2 TOPS per watt; int8 only (Coral USB Accelerator datasheet,
#   coral.ai/static/files/Coral-USB-Accelerator-datasheet.pdf; coral.ai/docs/edgetpu/benchmarks,
#   first paragraph);
# - "roughly 8 MB" of on-chip SRAM caching the model's parameter data, part of it reserved for the
#   model's executable; parameters that do not fit are fetched from host memory on every inference
#   (coral.ai/docs/edgetpu/compiler, section "Parameter data caching"; coral.ai/docs/edgetpu/
#   multiple-edgetpu: "a small amount of RAM ... to store the model's parameter data locally,
#   enabling faster inference speed compared to fetching the data from external memory");
# - the host link: USB 3.0 (5 Gb/s) on the USB Accelerator, PCIe Gen2 x1 (5 GT/s) on the M.2 and
#   Mini PCIe cards and the Accelerator Module (coral.ai/docs/m2/datasheet, Accelerator Module
#   datasheet v1.4); both code 8b/10b, so 500 MB/s of payload (the catalog's mem_bandwidth_gbs).
# Derived: the efficiency and the per-call cost are the slope and intercept of the line through
# two published USB-Accelerator latencies of models whose int8 parameters fit on chip and that are
# NOT in docs/published_latency.csv (coral.ai/docs/edgetpu/benchmarks, Table 1, column "Desktop
# CPU + USB Accelerator (USB 3.0) with Edge TPU"), at their published multiply-accumulate counts
# (Howard et al. 2017, "MobileNets", arXiv:1704.04861, Table 8: 1.0 MobileNet-224 569 M
# mult-adds and 4.2 M parameters, GoogLeNet = Inception v1 1550 M mult-adds and 6.8 M parameters):
# MobileNet v1 224 2.4 ms, Inception v1 224 3.4 ms. Slope 1.02 ms per GMAC = 2 GOP / 1.02 ms =
# 1.96 TOPS, 49 % of the peak; intercept 1.82 ms, of which the 224x224x3 uint8 input and 1000
# outputs take 0.30 ms on the link: 1.52 ms per call. Compute and streaming add up (no overlap
# assumed; VGG16 on the same table, 138 M parameters, agrees: see docs/profiles.md section 4).
EDGETPU_LINE_ROWS = (("MobileNet v1 224", 0.569, 2.4), ("Inception v1 224", 1.55, 3.4))
EDGETPU_PEAK_GOPS = 4000.0
EDGETPU_LINK_GBS = 0.5
EDGETPU_IMAGE_IO_BYTES = 224 * 224 * 3 + 1000  # uint8 input image and 1000 class scores
_SLOPE, _INTERCEPT = _line_through(EDGETPU_LINE_ROWS)
EDGETPU = OnChipFacts(
    sram_mb=8.0, bytes_per_element=1.0,
    efficiency=round(2.0 / (EDGETPU_PEAK_GOPS * _SLOPE * 1e-3), 3),
    call_ms=round(_INTERCEPT - EDGETPU_IMAGE_IO_BYTES / (EDGETPU_LINK_GBS * 1e6), 3),
    reference_io_bytes=EDGETPU_IMAGE_IO_BYTES,
    band=0.5,
    source=("8 MB SRAM, 4 TOPS int8, 500 MB/s link: Coral docs and datasheets; efficiency and "
            "per-call cost from Coral's published MobileNet v1 and Inception v1 latencies (USB "
            "Accelerator), models not in the checked table; band x/÷1.5 assumed (two checked rows "
            "cannot set a 90th percentile; their errors are printed by bench/estimator_published.py)"),
)
ON_CHIP: dict[str, OnChipFacts] = {"google-edgetpu": EDGETPU}


def on_chip_facts(hardware: HardwareClass) -> OnChipFacts | None:
    """The on-chip-memory facts of an accelerator class the estimator models that way, else None."""
    return ON_CHIP.get(hardware.name) if hardware.kind == "npu" else None


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
