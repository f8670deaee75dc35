"""The edge catalog's devices: phones by SoC class, Jetson modules, a NUC class, NPU boards.
Every figure carries its source; NPU boards are estimate-only with their limits stated."""

from __future__ import annotations

import pandas as pd
import pytest

from pricing import table as ot
from pricing.edge import POWER_SOURCE, edge_offers, load_edge_devices
from profiles.calibration import default_calibration
from profiles.estimate import calibrated_rows, estimated_runtimes
from profiles.hardware import get_hardware, hardware_catalog
from profiles.hardware_catalog_edge import EDGE_CLASSES, USABLE_BANDWIDTH
from profiles.kernel_stats import Kernel, KernelStats
from profiles.measure import Measurement
from profiles.rows import measured_row
from profiles.table import ERROR_BAND, RUNTIME

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
