"""The edge catalog's devices: phones by SoC class, Jetson modules, a NUC class, NPU boards.
Every figure carries its source; NPU boards are estimate-only with their limits stated."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pricing import table as ot
from pricing.edge import POWER_SOURCE, edge_offers, load_edge_devices
from profiles.calibration import default_calibration, predict_ms
from profiles.estimate import calibrated_rows, estimated_runtimes
from profiles.estimate_hardware import EDGETPU, EDGETPU_IMAGE_IO_BYTES, EDGETPU_LINE_ROWS, on_chip_facts
from profiles.estimate_model import estimate_band, on_chip_parts
from profiles.hardware import get_hardware, hardware_catalog
from profiles.hardware_catalog_edge import EDGE_CLASSES, USABLE_BANDWIDTH
from profiles.kernel_stats import Kernel, KernelStats, onnx_kernel_stats
from profiles.measure import Measurement
from profiles.onnx_prep import prepare_onnx
from profiles.paths import CACHE_ENV
from profiles.rows import measured_row
from profiles.table import ERROR_BAND, RUNTIME
from profiles.zoo import zoo_input_shapes, zoo_model_path

PHONES = ("arm-sd8gen3-4c", "arm-exynos1380-4c", "arm-sd680-4c", "arm-apple-a17pro-2c", "arm-apple-a16-2c")
NPUS = ("google-edgetpu", "hailo-8l")


def test_every_edge_device_names_a_known_class_and_its_sources():
    devices = load_edge_devices()
    catalog = hardware_catalog()
    assert set(devices[ot.HARDWARE]) <= set(catalog)
    for column in (ot.PRICE_SOURCE, POWER_SOURCE):
        assert devices[column].str.len().min() > 20
    offers = edge_offers(devices)
    for device in ("phone-flagship-android", "phone-midrange-android", "phone-older-android",
                   "iphone-15-pro", "iphone-15", "jetson-orin-nx-16gb", "jetson-agx-orin-64gb",
                   "rpi5-coral-usb", "rpi5-hailo8l"):
        assert f"edge:{device}" in set(offers[ot.OFFER])


def test_new_classes_are_registered_with_their_sources():
    catalog = hardware_catalog()
    for hw in EDGE_CLASSES:
        assert catalog[hw.name] == hw and len(hw.sources) >= 2


@pytest.mark.parametrize("name", PHONES)
def test_phone_classes_state_how_peak_and_bandwidth_were_derived(name):
    hw = get_hardware(name)
    assert hw.kind == "cpu" and hw.arch == "aarch64" and hw.tvm_target["kind"] == "llvm"
    text = " ".join(hw.sources)
    assert "peak (derived" in text and f"usable assumed {USABLE_BANDWIDTH:.0%}" in text
    # the peak written in the sources is the class's peak
    assert f"= {hw.peak_gflops:g} GFLOP/s" in text


@pytest.mark.parametrize("name", NPUS)
def test_npu_boards_are_estimate_only_with_their_limits(name):
    hw = get_hardware(name)
    assert hw.kind == "npu" and hw.tvm_target is None
    assert any(s.startswith("limits:") and "int8" in s for s in hw.sources)
    assert estimated_runtimes(hw) == ("onnxruntime",)


def _stats() -> KernelStats:
    return KernelStats(kernels=(Kernel(name="conv", kind="conv", flops=6e8, const_bytes=3e6, act_bytes=2e6),
                                Kernel(name="dw", kind="dwconv", flops=2e7, const_bytes=1e5, act_bytes=4e6)),
                       batch=1, method="onnx")


def _local_table(local: str) -> pd.DataFrame:
    rows = []
    for runtime, ms in (("onnxruntime", 8.0), ("openvino", 5.0), ("tvm", 200.0)):
        m = Measurement.from_samples(runtime, [ms, ms * 1.1], memory_mb=40.0, memory_method="rss-growth",
                                     runs_per_sample=1, measure_s=1.0)
        rows.append(measured_row("net", local, runtime, 1, m, source="measured-local", tvm_version="x"))
    return pd.DataFrame(rows)


def test_phones_are_estimated_for_every_cpu_runtime_npus_with_the_assumed_band():
    local = get_hardware("x86-zen4-2c")
    table = _local_table(local.name)
    calibration = default_calibration()
    flagship = calibrated_rows(table, local, get_hardware("arm-sd8gen3-4c"), {"net": _stats()}, calibration)
    older = calibrated_rows(table, local, get_hardware("arm-sd680-4c"), {"net": _stats()}, calibration)
    calibrated = {"onnxruntime", "openvino"} & set(calibration.cpu)
    assert set(flagship[RUNTIME]) == {"onnxruntime", "tvm"} | calibrated
    by = {r: older.set_index(RUNTIME).loc[r, "latency_ms_p50"] for r in calibrated}
    fast = {r: flagship.set_index(RUNTIME).loc[r, "latency_ms_p50"] for r in by}
    assert all(by[r] > fast[r] for r in by)  # an older phone is slower than a flagship
    npu = calibrated_rows(table, local, get_hardware("hailo-8l"), {"net": _stats()}, calibration)
    assert list(npu[RUNTIME]) == ["onnxruntime"] and npu[ERROR_BAND].iloc[0] == pytest.approx(1.0)


# --- the Coral Edge TPU: on-chip parameter memory and a host link (profiles.estimate_hardware) ----

def _net(params_int8_mb: float, gflop: float = 0.6) -> KernelStats:
    """One conv net: `gflop` GFLOP, `params_int8_mb` MB of int8 parameters (fp32 in the stats)."""
    return KernelStats(kernels=(Kernel(name="conv", kind="conv", flops=gflop * 1e9,
                                       const_bytes=params_int8_mb * 1e6 * 4, act_bytes=4e6),),
                       batch=1, method="onnx")


def _edgetpu_ms(stats: KernelStats, io_bytes: float | None = None) -> float:
    hw = get_hardware("google-edgetpu")
    return predict_ms(stats, 1, hw, default_calibration().params(hw, "onnxruntime"), io_bytes=io_bytes)


def test_edgetpu_catalog_states_the_facts_that_decide_its_latency():
    hw = get_hardware("google-edgetpu")
    text = " ".join(hw.sources)
    assert on_chip_facts(hw) is EDGETPU and EDGETPU.sram_mb == 8.0 and EDGETPU.bytes_per_element == 1
    assert hw.peak_gflops == 4000.0 and hw.mem_bandwidth_gbs == 0.5  # int8 TOPS; USB 3.0 payload
    assert "8 MB of SRAM" in text and "USB 3.0" in text and "PCIe Gen2 x1" in text
    assert hw.overhead_ms == EDGETPU.call_ms and 1.0 < EDGETPU.call_ms < 2.0
    assert 0.3 < EDGETPU.efficiency < 0.7
    assert on_chip_facts(get_hardware("hailo-8l")) is None  # no published rows: the assumed NPU path


def test_edgetpu_constants_reproduce_the_published_rows_they_come_from():
    # MobileNet v1 and Inception v1 on the USB Accelerator (Coral's Table 1): a 224x224x3 image in,
    # 1000 scores out, parameters on chip; the line through them sets efficiency and call cost
    for _, gmac, published in EDGETPU_LINE_ROWS:
        image_io_fp32 = EDGETPU_IMAGE_IO_BYTES * 4
        assert _edgetpu_ms(_net(4.0, 2 * gmac), image_io_fp32) == pytest.approx(published, rel=0.01)


def test_edgetpu_parameters_beyond_the_sram_stream_over_usb_every_inference():
    fits, streams = _edgetpu_ms(_net(3.5)), _edgetpu_ms(_net(35.0))
    assert streams > 10 * fits  # same compute; the streaming dominates
    link_ms_per_mb = 1e6 / (get_hardware("google-edgetpu").mem_bandwidth_gbs * 1e9) * 1e3
    assert streams - fits == pytest.approx((35.0 - 8.0) * link_ms_per_mb, rel=1e-6)
    assert _edgetpu_ms(_net(7.9)) < 1.05 * _edgetpu_ms(_net(1.0))  # under the SRAM, size is free
    hw = get_hardware("google-edgetpu")
    parts = on_chip_parts(_net(35.0), hw, EDGETPU)
    assert max(parts, key=parts.get) == "streamed" and sum(parts.values()) == pytest.approx(streams)


def test_edgetpu_io_bytes_cross_the_link():
    small, big = _edgetpu_ms(_net(3.5), io_bytes=4e3), _edgetpu_ms(_net(3.5), io_bytes=4e6 * 4)
    assert big - small == pytest.approx((4e6 - 1e3) / 0.5e6, rel=1e-6)  # int8 bytes at 0.5 GB/s


def test_edgetpu_mobilenetv2_is_within_its_band_of_coral_published_latency(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    shapes = zoo_input_shapes("mobilenetv2")
    stats = onnx_kernel_stats(prepare_onnx(zoo_model_path("mobilenetv2"), shapes))
    hw = get_hardware("google-edgetpu")
    io_fp32 = (3 * 224 * 224 + 1000) * 4
    estimate = _edgetpu_ms(stats, io_fp32)
    published = 2.6  # coral.ai/docs/edgetpu/benchmarks Table 1, USB Accelerator (docs/published_latency.csv)
    band = estimate_band(default_calibration().params(hw, "onnxruntime"), hw, stats.flops)
    assert band == EDGETPU.band
    assert estimate / (1 + band) <= published <= estimate * (1 + band)
    assert abs(math.log(estimate / published)) < math.log(1.3)  # within ±30 %
    assert estimate < 5.0  # was 221 ms before the on-chip model (the fp32 roofline at the USB rate)


def test_edgetpu_rows_carry_its_band_and_the_pieces_io():
    local = get_hardware("x86-zen4-2c")
    table = _local_table(local.name)
    hw = get_hardware("google-edgetpu")
    rows = calibrated_rows(table, local, hw, {"net": _net(3.5)}, default_calibration())
    big_io = calibrated_rows(table, local, hw, {"net": _net(3.5)}, default_calibration(),
                             io_bytes={"net": 4e7})
    assert list(rows[RUNTIME]) == ["onnxruntime"] and rows[ERROR_BAND].iloc[0] == pytest.approx(EDGETPU.band)
    assert big_io["latency_ms_p50"].iloc[0] > rows["latency_ms_p50"].iloc[0] + 15.0


def _relu_model(path, n: int):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def test_profiling_charts_each_piece_its_own_io_over_the_edgetpu_link(tmp_path, monkeypatch):
    """The profiler hands every piece's measured input/output bytes to the Edge TPU estimate:
    a piece with 1 M floats in and out pays their int8 bytes over the 0.5 GB/s link."""
    from profiles.cache import ProfileCache
    from profiles.measure import MeasureConfig
    from profiles.profiler import PieceSource, profile_pieces

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    pieces = [PieceSource(piece=name, onnx_path=_relu_model(tmp_path / f"{name}.onnx", n), input_shapes={"x": [1, n]})
              for name, n in (("small", 16), ("big", 1_000_000))]
    config = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=120)
    report = profile_pieces(pieces, ["google-edgetpu"], runtimes=("onnxruntime",), config=config,
                            cache=ProfileCache(tmp_path / "profiles"))
    tpu = report.table[report.table["hardware"] == "google-edgetpu"].set_index("piece")["latency_ms_p50"]
    link_ms = (2 * 1_000_000 - 2 * 16) / 0.5e6  # int8 in + out at 0.5 GB/s
    assert tpu["big"] - tpu["small"] == pytest.approx(link_ms, rel=0.05)
