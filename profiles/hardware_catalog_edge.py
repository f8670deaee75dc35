"""Edge hardware beyond the four boards: phones by SoC class, more Jetson modules, an x86 NUC,
and NPU boards. Every figure names its source; a figure that is derived or assumed says so.

Conventions (the same as `hardware_catalog_data`):
- a phone class is the **big cores an inference uses** (`cores`): runtimes on a phone pin to the
  performance cores (ONNX Runtime's and TFLite's usual 4 threads on Android; the 2 P-cores on an
  iPhone); the little cores add little and are left out of the peak;
- fp32 peak = Σ cores × clock × fp32 FLOP/cycle (2 FMA pipes × lanes × 2). Clocks are the
  published maximum, so the peak is an upper bound (sustained clocks on a phone are lower:
  thermals; the calibrated estimator's efficiencies absorb part of this, the band the rest);
- memory bandwidth: the published (or bus-derived) theoretical figure × 0.5, as for the Pi 5
  (8.5 of 17 GB/s in published STREAM runs): "usable" is assumed, not measured on these devices;
- NPU boards are **estimate-only** (`kind="npu"`, no TVM target): none of this project's runtimes
  runs on them. Their peaks are int8 TOPS (the models must be quantised to int8 and compiled by
  the vendor's compiler), their supported-operator limits are stated in `sources` (prefixed
  "limits:"), and their rows use the catalog's NPU convention (runtime label `onnxruntime`,
  assumed efficiencies, a ×/÷2 band; `profiles.calibration.ASSUMED`) — except the Coral Edge
  TPU, estimated from its published facts (on-chip parameter memory, host link, an efficiency
  and per-call cost from Coral's published latencies: `profiles.estimate_hardware.EDGETPU`).
"""

from __future__ import annotations

from profiles.estimate_hardware import EDGETPU, EDGETPU_LINK_GBS, EDGETPU_PEAK_GOPS
from profiles.hardware_class import HardwareClass, x86_target

EDGE_CLASSES: list[HardwareClass] = []

USABLE_BANDWIDTH = 0.5  # share of the theoretical DRAM figure a CPU streams (assumed; see above)


def _add(hardware: HardwareClass) -> HardwareClass:
    EDGE_CLASSES.append(hardware)
    return hardware


def _phone(name, target, clusters, theoretical_gbs, sources, bw_note):
    """A phone class: `clusters` = [(cores, GHz, fp32 FLOP/cycle, what), ...] of the big cores."""
    cores = sum(n for n, *_ in clusters)
    peak = round(sum(n * ghz * fpc for n, ghz, fpc, _ in clusters), 1)
    formula = " + ".join(f"{n} x {ghz:g} GHz x {fpc} ({what})" for n, ghz, fpc, what in clusters)
    return HardwareClass(
        name=name, kind="cpu", arch="aarch64", cores=cores, tvm_target=target,
        peak_gflops=peak, mem_bandwidth_gbs=round(theoretical_gbs * USABLE_BANDWIDTH, 1),
        sources=[*sources, f"peak (derived, upper bound at maximum clocks) = {formula} = {peak:g} GFLOP/s",
                 f"memory: {bw_note}; usable assumed {USABLE_BANDWIDTH:.0%} of it"],
    )


def _android(mcpu: str, cores: int) -> dict:
    return {"kind": "llvm", "mtriple": "aarch64-linux-android", "mcpu": mcpu, "num-cores": cores}


def _ios(mcpu: str, cores: int) -> dict:
    return {"kind": "llvm", "mtriple": "aarch64-apple-ios", "mcpu": mcpu, "num-cores": cores}


# --- phones ------------------------------------------------------------------------------------

_add(_phone(
    "arm-sd8gen3-4c", _android("cortex-x4", 4),
    [(1, 3.3, 32, "Cortex-X4: 4x128-bit FMA pipes"), (3, 3.2, 16, "Cortex-A720: 2x128-bit FMA")],
    76.8,
    [("flagship Android (2024): Qualcomm Snapdragon 8 Gen 3 (Galaxy S24 in the US, Xiaomi 14, ...): "
      "1x Cortex-X4 at 3.3 GHz, 3x A720 at 3.2 GHz, 2x A720 at 3.0 GHz, 2x A520 at 2.3 GHz "
      "(Qualcomm's announcement, as listed by fonearena.com/blog/408835 and trendgrnd.com); "
      "LPDDR5X up to 4800 MHz (droidholic.com/snapdragon-8-gen-3-launched)"),
     "cores = the X4 and the three 3.2 GHz A720s (4 inference threads)"],
    "LPDDR5X at 4800 MHz = 9600 MT/s on a 64-bit bus = 76.8 GB/s theoretical (bus width assumed "
    "64-bit, as in every Snapdragon 8-series)",
))
_add(_phone(
    "arm-exynos1380-4c", _android("cortex-a78", 4),
    [(4, 2.4, 16, "Cortex-A78: 2x128-bit FMA")],
    34.1,
    [("mid-range Android (2023): Samsung Exynos 1380 (Galaxy A54): 4x Cortex-A78 at 2.4 GHz + "
      "4x Cortex-A55 at 2.0 GHz; LPDDR4X/LPDDR5 (phonearena.com/news/samsung-exynos-1380-galaxy-a54"
      "_id145832, flashcardtree.com)"),
     "cores = the four Cortex-A78"],
    "LPDDR4X-4266 on a 64-bit bus = 34.1 GB/s theoretical (speed and width assumed: the "
    "announcement names the memory type only)",
))
_add(_phone(
    "arm-sd680-4c", _android("cortex-a73", 4),
    [(4, 2.4, 8, "Kryo 265 Gold = Cortex-A73: 8 fp32 FLOP/cycle assumed (one 128-bit FMA per cycle)")],
    17.0,
    [("older / budget Android (2021-): Qualcomm Snapdragon 680 (Redmi Note 11, Galaxy A23, ...): "
      "4x Kryo 265 Gold (Cortex-A73) at 2.4 GHz + 4x Kryo 265 Silver (Cortex-A53) at 1.9 GHz; "
      "memory bandwidth 17 GB/s (nanoreview.net/en/soc-compare/qualcomm-snapdragon-865-vs-qualcomm-"
      "snapdragon-680)"),
     "cores = the four Cortex-A73"],
    "17 GB/s theoretical (LPDDR4X, nanoreview.net)",
))
_add(_phone(
    "arm-apple-a17pro-2c", _ios("apple-a17", 2),
    [(2, 3.7, 32, "Apple P-core: 4x128-bit FMA pipes, as measured for Apple's big cores by "
                  "third-party microbenchmarks; Apple does not publish it")],
    51.2,
    [("recent iPhone (iPhone 15 Pro / Pro Max): Apple A17 Pro, 6-core CPU (2 performance + 4 "
      "efficiency), up to 3.7 GHz (pre-launch report, macrumors.com/352; Apple publishes no "
      "clocks), "
      "8 GB RAM (gearrice.com, Geekbench listing)"),
     "cores = the 2 performance cores"],
    "LPDDR5-6400 on a 64-bit bus = 51.2 GB/s theoretical (assumed: Apple does not publish it)",
))
_add(_phone(
    "arm-apple-a16-2c", _ios("apple-a16", 2),
    [(2, 3.46, 32, "Apple P-core: 4x128-bit FMA pipes (third-party microbenchmarks)")],
    51.2,
    [("iPhone 15 / 14 Pro: Apple A16 Bionic, 6-core CPU (2 performance + 4 efficiency) at up to "
      "3.46 GHz, 6 GB LPDDR5 (macrumors.com/352, gadgets360.com)"),
     "cores = the 2 performance cores"],
    "LPDDR5-6400 on a 64-bit bus = 51.2 GB/s theoretical (assumed: Apple does not publish it)",
))

# --- an x86 NUC --------------------------------------------------------------------------------

_add(HardwareClass(
    name="x86-meteorlake-6c", kind="cpu", arch="x86_64", cores=6,
    tvm_target=x86_target("meteorlake", 6), peak_gflops=round(6 * 4.8 * 32, 1),
    mem_bandwidth_gbs=round(89.6 * USABLE_BANDWIDTH, 1),
    sources=[("x86 NUC: ASUS NUC 14 Pro (NUC14RVH) / ASRock NUC BOX-155H with Intel Core Ultra 7 "
              "155H (Meteor Lake-H: 6 P-cores up to 4.8 GHz, 8 E-cores, 2 LP E-cores), reviewed at "
              "anandtech.com/show/21398; ark.intel.com (Core Ultra 7 155H)"),
             ("cores = the 6 P-cores: OpenVINO's LATENCY hint runs on P-cores only on hybrid CPUs, "
              "and ONNX Runtime is given the class's cores"),
             "Redwood Cove P-core: 2x256-bit FMA = 32 fp32 FLOP/cycle; peak at max turbo (upper bound)",
             ("memory: dual-channel DDR5-5600 = 89.6 GB/s theoretical (ark.intel.com); usable "
              f"assumed {USABLE_BANDWIDTH:.0%}"),
             ("no edge device row: no unit price with a source was found; add the device to "
              "pricing/data/edge_devices.csv with yours")],
))

# --- more Jetson modules -----------------------------------------------------------------------

_A78AE = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78ae"}


def _jetson(name, sms, tflops, bw, sources):
    return HardwareClass(
        name=name, kind="gpu", arch="aarch64", cores=sms,
        tvm_target={"kind": "cuda", "arch": "sm_87", "host": _A78AE},
        peak_gflops=tflops * 1000.0, mem_bandwidth_gbs=bw, overhead_ms=0.1,
        sources=[*sources, f"cores = {sms} streaming multiprocessors",
                 ("overhead 0.1 ms assumed (as for the Orin Nano): integrated GPU sharing memory "
                  "with the CPU, so kernel launches only")],
    )


_add(_jetson("nvidia-orin-nx-16gb", 8, 1.88, 102.4, [
    ("Jetson Orin NX 16GB: 1024 Ampere CUDA cores (8 SMs) at 918 MHz = 1.88 TFLOPS fp32 "
     "(deviceQuery output, gist.github.com/atinfinity/8cede915acda05d0ff427c09604735dd); 128-bit "
     "LPDDR5 at 102.4 GB/s, 8x Cortex-A78AE, 10-25 W (NVIDIA Jetson Orin NX series datasheet)")]))
_add(_jetson("nvidia-agx-orin-64gb", 16, 5.3, 204.8, [
    ("Jetson AGX Orin 64GB: 16 SMs, 2048 CUDA cores = 5.3 TFLOPS fp32, 64 tensor cores (NVIDIA "
     "Jetson AGX Orin series technical brief, as quoted at mzph.cn/web/30785.shtml); 256-bit "
     "LPDDR5 at 204.8 GB/s, 12x Cortex-A78AE, 15-60 W (NVIDIA Jetson AGX Orin datasheet)")]))

# --- NPU boards (estimate-only) ----------------------------------------------------------------

_add(HardwareClass(
    name="google-edgetpu", kind="npu", arch="aarch64", cores=1, tvm_target=None,
    peak_gflops=EDGETPU_PEAK_GOPS, mem_bandwidth_gbs=EDGETPU_LINK_GBS, overhead_ms=EDGETPU.call_ms,
    sources=[("Google Coral Edge TPU (USB Accelerator): 4 TOPS int8 peak, 2 TOPS per watt "
              "(coral.ai/static/files/Coral-USB-Accelerator-datasheet.pdf; coral.ai/docs/edgetpu/"
              "benchmarks, first paragraph)"),
             ("limits: int8 only — the model must be fully integer-quantised TensorFlow Lite, "
              "compiled by the Edge TPU compiler; no ONNX path (convert and quantise first); an "
              "operation the Edge TPU lacks, and every operation after it, runs on the host CPU "
              "(coral.ai/docs/edgetpu/models-intro; not modelled: the estimate assumes every "
              "operation maps to the Edge TPU, as convolutions, pooling, adds and fully connected "
              "layers do)"),
             ("on-chip memory: roughly 8 MB of SRAM caches the model's parameters (part of it "
              "reserved for the executable); parameters that do not fit are fetched from host "
              "memory over the link on every inference (coral.ai/docs/edgetpu/compiler, 'Parameter "
              "data caching'; coral.ai/docs/edgetpu/multiple-edgetpu)"),
             ("peak_gflops = 4000 int8 GOPS: the fp32 rows are estimated as the int8-quantised "
              "model (1 byte per weight and activation)"),
             ("mem_bandwidth_gbs = the host link's payload rate: USB 3.0 at 5 Gb/s (datasheet) "
              "with 8b/10b coding = 0.5 GB/s; the M.2 / Mini PCIe cards' PCIe Gen2 x1 (5 GT/s, "
              "8b/10b; coral.ai/docs/m2/datasheet) gives the same 0.5 GB/s. Inputs, outputs and the "
              "parameters beyond the SRAM cross it"),
             (f"overhead_ms = {EDGETPU.call_ms:g} ms per call and {EDGETPU.efficiency:.0%} of the "
              "int8 peak: the intercept and slope of Coral's published USB-Accelerator latencies "
              "of MobileNet v1 (2.4 ms) and Inception v1 (3.4 ms) against their multiply-adds "
              "(coral.ai/docs/edgetpu/benchmarks Table 1; arXiv:1704.04861 Table 8), less the "
              "224x224x3 input's transfer (profiles/estimate_hardware.py EDGETPU)"),
             ("checked against Coral's published MobileNet v2 and ResNet-50 latencies "
              "(docs/published_latency.csv, bench/estimator_published.py), which set no constant "
              "here; estimates carry a x/÷1.5 band"),
             "runtime label `onnxruntime`: the catalog's convention for an NPU's vendor path"],
))
_add(HardwareClass(
    name="hailo-8l", kind="npu", arch="aarch64", cores=1, tvm_target=None,
    peak_gflops=13000.0, mem_bandwidth_gbs=0.985, overhead_ms=0.3,
    sources=[("Hailo-8L (Raspberry Pi AI Kit, M.2 on the Pi 5's PCIe Gen 2/3 x1): 13 TOPS int8; "
              "Hailo-8: 26 TOPS at 2.5 W typical (cnx-software.com/2020/10/07, "
              "danieldubinsky.github.io/personal-site/case-studies/yolo26-jetson-vs-hailo)"),
             ("limits: int8 (some layers 4/16-bit) networks compiled to HEF by Hailo's Dataflow "
              "Compiler from ONNX or TFLite; only the layers in the compiler's supported-layer list; "
              "no external DRAM on Hailo-8/8L: the whole network must fit in on-chip memory "
              "(or be split into contexts, which costs time)"),
             "peak_gflops = 13000 int8 GOPS (fp32 rows estimated against it, ×/÷2)",
             "mem_bandwidth_gbs = one PCIe Gen 3 lane (0.985 GB/s) to the host: weights stay on chip",
             "overhead 0.3 ms assumed: PCIe round trip per inference (not measured)",
             "runtime label `onnxruntime`: the catalog's convention for an NPU's vendor path"],
))
