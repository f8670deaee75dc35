"""The built-in hardware classes. Each entry names the sources of its peak figures.

CPU classes are named `<arch>-<microarch>-<N>c` with N the vCPUs a piece may use (what
`local_hardware_name()` reports for this machine). Where a vCPU is a hyperthread (AWS Intel,
Azure Intel and AMD Milan), two vCPUs share one physical core: `cores` stays the vCPU count but
the fp32 peak is computed from physical cores, since two threads on one core share its FMA
units. On AWS Graviton, AWS 7th-generation AMD (c7a/m7a) and Ampere Altra a vCPU is a whole core.

Memory bandwidth of a CPU class is a share of its socket: twice the per-core fair share of the
socket's DRAM bandwidth per physical core (neighbours on a shared host rarely all stream at
once; a single core alone can draw more), capped at the socket's theoretical bandwidth. Edge
boards own their memory, so theirs is a measured-style STREAM figure for the whole board.

GPU classes carry the non-tensor-core fp32 peak and DRAM bandwidth from the vendor datasheet;
`cores` is the number of streaming multiprocessors; `overhead_ms` is an assumed fixed cost per
inference for kernel launches and host<->device copies of small tensors.
"""

from __future__ import annotations

from profiles.hardware_catalog_edge import EDGE_CLASSES
from profiles.hardware_class import HardwareClass, arm_target, cpu_class, x86_target

# fp32 FLOPs per cycle per core: 2 FMA pipes x vector lanes x 2.
# Zen 4: 2x256-bit FMA (AVX-512 double-pumped) -> 32; Sapphire Rapids: 2x512-bit FMA -> 64;
# Neoverse V1 (Graviton3): 4x128-bit FMA -> 32; Neoverse V2 (Graviton4): 4x128 -> 32;
# Cortex-A72/A76/A78AE: 2x128-bit FMA -> 16.
BUILTIN: list[HardwareClass] = []  # `profiles.hardware` registers these, in this order


def _add(hardware: HardwareClass) -> HardwareClass:
    BUILTIN.append(hardware)
    return hardware


# --- shared-host server CPUs -------------------------------------------------------------------


class _Platform:
    """One server CPU as sold by the clouds: clocks, vector width and its socket's memory."""

    def __init__(self, microarch, arch, mcpu, ghz, flops_per_cycle, threads_per_core,
                 socket_gbs, socket_cores, sources):
        self.microarch, self.arch, self.mcpu = microarch, arch, mcpu
        self.ghz, self.flops_per_cycle = ghz, flops_per_cycle
        self.threads_per_core = threads_per_core
        self.socket_gbs, self.socket_cores = socket_gbs, socket_cores
        self.sources = sources

    def per_core_gbs(self) -> float:
        return round(2.0 * self.socket_gbs / self.socket_cores, 1)

    def hardware(self, vcpus: int) -> HardwareClass:
        physical = vcpus / self.threads_per_core
        bw = round(min(physical * self.per_core_gbs(), self.socket_gbs), 1)
        prefix = "x86" if self.arch == "x86_64" else "arm"
        target = (x86_target(self.mcpu, vcpus) if self.arch == "x86_64"
                  else arm_target(self.mcpu, vcpus))
        smt = (f"{vcpus} vCPUs = {physical:g} physical cores ({self.threads_per_core} hyperthreads "
               "per core); peak = physical cores x GHz x FLOP/cycle" if self.threads_per_core > 1
               else f"{vcpus} vCPUs = {vcpus} physical cores (no SMT)")
        bw_note = (f"memory bandwidth {bw:g} GB/s: assumed 2 x fair share "
                   f"({self.socket_gbs:g} GB/s socket / {self.socket_cores} cores) = "
                   f"{self.per_core_gbs():g} GB/s per physical core, capped at the socket")
        return HardwareClass(
            name=f"{prefix}-{self.microarch}-{vcpus}c", kind="cpu", arch=self.arch, cores=vcpus,
            tvm_target=target,
            peak_gflops=round(physical * self.ghz * self.flops_per_cycle, 1),
            mem_bandwidth_gbs=bw, sources=[*self.sources, smt, bw_note],
        )


_ZEN4 = _Platform(
    "zen4", "x86_64", "znver4", 3.7, 32, 1, 460.8, 96,
    [("AMD EPYC 9R14 (AWS c7a/m7a/r7a): up to 3.7 GHz all-core turbo, one physical core per "
     "vCPU (no SMT), aws.amazon.com/ec2/instance-types/c7a"),
     ("Zen 4: 2x256-bit FMA per core = 32 fp32 FLOP/cycle (AVX-512 is double-pumped), AMD "
     "Zen 4 software optimisation guide"),
     "socket: 12 channels DDR5-4800 = 460.8 GB/s for 96 cores (AMD EPYC 9004 product brief)"],
)
_SPR = _Platform(
    "spr", "x86_64", "sapphirerapids", 3.2, 64, 2, 307.2, 48,
    [("Intel Xeon Platinum 8488C (AWS c7i/m7i): up to 3.2 GHz all-core turbo, 2 vCPUs per core, "
     "aws.amazon.com/ec2/instance-types/c7i (AVX-512-heavy code may clock lower)"),
     "Sapphire Rapids: 2x512-bit FMA per core = 64 fp32 FLOP/cycle, Intel optimisation manual",
     "socket: 8 channels DDR5-4800 = 307.2 GB/s for 48 cores (Intel ARK, Xeon 8480+ class)"],
)
_ICX = _Platform(
    "icx", "x86_64", "icelake-server", 3.5, 64, 2, 204.8, 32,
    [("Intel Xeon Platinum 8375C (AWS c6i/m6i) and 8370C (Azure Dv5/Ddv5/Dlsv5): up to 3.5 GHz "
     "all-core turbo, 2 vCPUs per core; aws.amazon.com/ec2/instance-types/c6i, "
     "learn.microsoft.com/azure/virtual-machines/dv5-dsv5-series"),
     "Ice Lake-SP Platinum: 2x512-bit FMA per core = 64 fp32 FLOP/cycle",
     "socket: 8 channels DDR4-3200 = 204.8 GB/s for 32 cores (Intel ARK)"],
)
_SKX = _Platform(
    "skx", "x86_64", "skylake-avx512", 3.1, 64, 2, 128.0, 24,
    [("Intel Xeon Platinum 8175M / 8259CL (AWS m5): up to 3.1 GHz all-core turbo, 2 vCPUs per "
     "core, aws.amazon.com/ec2/instance-types/m5"),
     "Skylake-SP / Cascade Lake Platinum: 2x512-bit FMA per core = 64 fp32 FLOP/cycle",
     "socket: 6 channels DDR4-2666 = 128 GB/s for 24 cores (Intel ARK)"],
)
_ZEN3 = _Platform(
    "zen3", "x86_64", "znver3", 3.5, 32, 2, 204.8, 64,
    [("AMD EPYC 7763v (Azure Dasv5/Dadsv5): up to 3.5 GHz (max boost; all-core clock not "
     "published, so the peak is an upper bound), 2 vCPUs per core, "
     "learn.microsoft.com/azure/virtual-machines/dasv5-dadsv5-series"),
     "Zen 3: 2x256-bit FMA per core = 32 fp32 FLOP/cycle",
     "socket: 8 channels DDR4-3200 = 204.8 GB/s for 64 cores (AMD EPYC 7003 product brief)"],
)
_N1 = _Platform(
    "neoverse-n1", "aarch64", "neoverse-n1", 3.0, 16, 1, 204.8, 80,
    [("Ampere Altra Q80-30 (Azure Dpsv5/Dplsv5/Dpdsv5): 3.0 GHz, one core per vCPU, "
     "learn.microsoft.com/azure/virtual-machines/dpsv5-dpdsv5-series"),
     "Neoverse N1: 2x128-bit FMA per core = 16 fp32 FLOP/cycle, Arm Neoverse N1 TRM",
     "socket: 8 channels DDR4-3200 = 204.8 GB/s for 80 cores (Ampere Altra product brief)"],
)
_V1 = _Platform(
    "neoverse-v1", "aarch64", "neoverse-v1", 2.6, 32, 1, 307.2, 64,
    [("AWS Graviton3 (c7g/m7g): 64 Neoverse V1 cores at 2.6 GHz, one core per vCPU, "
     "aws.amazon.com/ec2/instance-types/c7g"),
     "Neoverse V1: 4x128-bit FMA pipes (2x256-bit SVE) = 32 fp32 FLOP/cycle",
     "socket: 8 channels DDR5-4800 = 307.2 GB/s for 64 cores (AWS Graviton3 launch material)"],
)
_V2 = _Platform(
    "neoverse-v2", "aarch64", "neoverse-v2", 2.8, 32, 1, 537.6, 96,
    [("AWS Graviton4 (c8g/m8g): 96 Neoverse V2 cores at 2.8 GHz, one core per vCPU, "
     "aws.amazon.com/ec2/instance-types/c8g"),
     "Neoverse V2: 4x128-bit SVE2 FMA pipes = 32 fp32 FLOP/cycle",
     "socket: 12 channels DDR5-5600 = 537.6 GB/s for 96 cores (AWS Graviton4 launch material)"],
)

# The sizes the price snapshot sells (pricing/data/cloud_snapshot.csv); x86-zen4-2c is also
# this development machine (AMD EPYC Genoa, 2 cores) and must keep its name.
_SIZES = {
    _ZEN4: (1, 2, 4, 8, 16),
    _SPR: (2, 4, 8, 16),
    _ICX: (2, 4, 8, 32, 48, 64),
    _SKX: (2, 4, 8),
    _ZEN3: (2, 4, 8, 32),
    _N1: (2, 4, 8, 48),
    _V1: (2, 4, 8, 16, 32),
    _V2: (2, 4, 8),
}
for _platform, _vcpus in _SIZES.items():
    for _n in _vcpus:
        _add(_platform.hardware(_n))

# --- edge boards -------------------------------------------------------------------------------

_add(cpu_class(
    "arm-cortex-a72-4c", "aarch64", 4, arm_target("cortex-a72", 4), ghz=1.8, flops_per_cycle=16,
    bw=4.0,
    sources=[("Raspberry Pi 4 Model B (BCM2711): 4x Cortex-A72 at 1.8 GHz, raspberrypi.com product "
             "brief"),
             "Cortex-A72: 2x128-bit NEON FMA = 16 fp32 FLOP/cycle, Arm Cortex-A72 TRM",
             ("memory: 32-bit LPDDR4-3200 = 12.8 GB/s theoretical; ~4 GB/s assumed from published "
             "STREAM runs on the Pi 4")],
))
_add(cpu_class(
    "arm-cortex-a76-4c", "aarch64", 4, arm_target("cortex-a76", 4), ghz=2.4, flops_per_cycle=16,
    bw=8.5,
    sources=["Raspberry Pi 5 (BCM2712): 4x Cortex-A76 at 2.4 GHz, raspberrypi.com product brief",
             "Cortex-A76: 2x128-bit FMA = 16 fp32 FLOP/cycle, Arm Cortex-A76 TRM",
             ("memory: 32-bit LPDDR4X-4267 = 17 GB/s theoretical; ~8.5 GB/s assumed from "
             "published STREAM runs on the Pi 5")],
))
_add(cpu_class(
    "x86-gracemont-4c", "x86_64", 4, x86_target("gracemont", 4), ghz=2.9, flops_per_cycle=16,
    bw=20.0,
    sources=[("Intel N100 (mini PCs): 4 Gracemont E-cores, 3.4 GHz max turbo, ~2.9 GHz all-core "
             "as reported in reviews, ark.intel.com (Intel Processor N100)"),
             "Gracemont: 2x128-bit FMA (AVX2 on 128-bit units) = 16 fp32 FLOP/cycle",
             "memory: one channel DDR5-4800 = 38.4 GB/s theoretical; 20 GB/s assumed usable"],
))


# --- GPUs and accelerators ---------------------------------------------------------------------


def _gpu(name, sm_arch, sms, tflops, bw, overhead_ms, sources, host=None):
    return HardwareClass(
        name=name, kind="gpu", arch="aarch64" if host else "x86_64", cores=sms,
        tvm_target={"kind": "cuda", "arch": sm_arch, "host": host or {"kind": "llvm"}},
        peak_gflops=tflops * 1000.0, mem_bandwidth_gbs=bw, overhead_ms=overhead_ms,
        sources=[*sources, f"cores = {sms} streaming multiprocessors",
                 f"overhead {overhead_ms} ms assumed: kernel launches + host<->device copies"],
    )


_PCIE = 0.2  # discrete GPU behind PCIe: launch + copies of small inputs/outputs
_SXM = 0.15  # datacenter SXM/NVL parts on fast hosts

_add(_gpu("nvidia-t4", "sm_75", 40, 8.1, 320.0, _PCIE, [
    ("NVIDIA T4 datasheet: 8.1 TFLOPS fp32 (non-tensor), 16 GB GDDR6 at 320 GB/s (AWS g4dn, "
    "Azure NCasT4_v3)")]))
_add(_gpu("nvidia-a10g", "sm_86", 72, 35.0, 600.0, _PCIE, [
    ("NVIDIA A10G (AWS g5 only; NVIDIA publishes no datasheet): 35 TFLOPS fp32, 24 GB GDDR6 at "
    "600 GB/s, as in AWS/partner material (e.g. baseten.co 'NVIDIA A10 vs A10G')")]))
_add(_gpu("nvidia-a10", "sm_86", 72, 31.2, 600.0, _PCIE, [
    "NVIDIA A10 datasheet: 31.2 TFLOPS fp32, 24 GB GDDR6 at 600 GB/s (Azure NVadsA10_v5)"]))
_add(_gpu("nvidia-l4", "sm_89", 58, 30.3, 300.0, _PCIE, [
    "NVIDIA L4 datasheet: 30.3 TFLOPS fp32, 24 GB GDDR6 at 300 GB/s (AWS g6)"]))
_add(_gpu("nvidia-v100", "sm_70", 80, 15.7, 900.0, _SXM, [
    "NVIDIA V100 SXM2 datasheet: 15.7 TFLOPS fp32, 16 GB HBM2 at 900 GB/s (AWS p3)"]))
_add(_gpu("nvidia-v100-pcie", "sm_70", 80, 14.0, 900.0, _PCIE, [
    "NVIDIA V100 PCIe datasheet: 14 TFLOPS fp32, 16 GB HBM2 at 900 GB/s (Azure NCv3)"]))
_add(_gpu("nvidia-a100-40gb", "sm_80", 108, 19.5, 1555.0, _SXM, [
    ("NVIDIA A100 datasheet (40 GB SXM4): 19.5 TFLOPS fp32, HBM2 at 1,555 GB/s (AWS p4d, "
    "Azure ND96asr_v4)")]))
_add(_gpu("nvidia-a100-80gb", "sm_80", 108, 19.5, 1935.0, _PCIE, [
    ("NVIDIA A100 datasheet (80 GB PCIe): 19.5 TFLOPS fp32, HBM2e at 1,935 GB/s (Azure "
    "NC A100 v4)")]))
_add(_gpu("nvidia-h100", "sm_90", 132, 67.0, 3350.0, _SXM, [
    "NVIDIA H100 datasheet (SXM5 80 GB): 67 TFLOPS fp32, HBM3 at 3.35 TB/s (AWS p5)"]))
_add(_gpu("nvidia-h100-nvl", "sm_90", 132, 60.0, 3900.0, _SXM, [
    ("NVIDIA H100 datasheet (H100 NVL, 94 GB): 60 TFLOPS fp32, HBM3 at 3.9 TB/s per GPU "
    "(Azure NC H100 v5)")]))
_add(_gpu(
    "nvidia-orin-nano", "sm_87", 8, 2.09, 102.0, 0.1,
    [("Jetson Orin Nano 8GB in 'Super' mode (JetPack 6.1+): 1024 Ampere CUDA cores at 1020 MHz "
     "= 2.09 TFLOPS fp32; 128-bit LPDDR5 at 102 GB/s (NVIDIA Jetson Orin Nano Super developer "
     "kit page); integrated GPU shares memory with the CPU, so only launch overhead")],
    host={"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78ae"},
))
_add(HardwareClass(
    name="aws-inferentia2", kind="npu", arch="x86_64", cores=2, tvm_target=None,
    peak_gflops=47500.0, mem_bandwidth_gbs=820.0, overhead_ms=0.3,
    sources=[("AWS Neuron docs, Inferentia2 architecture: per chip 2 NeuronCore-v2, 47.5 TFLOPS "
             "fp32 (190 TFLOPS fp16/bf16), 32 GiB HBM at 820 GB/s; one class per chip (inf2.xlarge "
             "has 1 chip, inf2.24xlarge 6)"),
             "cores = 2 NeuronCore-v2; TVM has no Neuron backend, so profiles must be imported",
             "overhead 0.3 ms assumed: Neuron runtime invocation + host<->device copies"],
))

# phones by SoC class, more Jetson modules, an x86 NUC and NPU boards (profiles/hardware_catalog_edge.py)
BUILTIN.extend(EDGE_CLASSES)
