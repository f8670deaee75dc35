"""The GPU runtimes, ONNX Runtime's CUDA (fp32) and TensorRT (fp16) execution providers: estimated
on GPU classes (`calibration.GPU_ORT`, fitted on published rows), measured only where
onnxruntime-gpu and a catalog GPU are present, skipped with a one-line reason elsewhere, and
exported to Triton with the matching accelerator. Nothing here needs a GPU."""

from __future__ import annotations

import onnx
import pytest
from test_estimator import _local_rows
from test_tuning import two_kernel_model

from placement.export import triton
from placement.export.artifacts import Artifact, session_settings
from placement.export.layout import Unit
from profiles import gpu_runtimes
from profiles import profiler as profiler_module
from profiles.cache import ProfileCache
from profiles.calibration import GPU_ORT, default_calibration, predict_ms
from profiles.estimate import calibrated_rows, calibrated_runtimes
from profiles.hardware import get_hardware, local_hardware
from profiles.kernel_stats import Kernel, KernelStats
from profiles.measure import MeasureConfig, Measurement
from profiles.ort_adapter import OrtError, measure_onnxruntime
from profiles.profiler import PieceSource, profile_pieces
from profiles.table import BATCH, ERROR_BAND, HARDWARE, LATENCY_MS_P50, RUNTIME, SOURCE

CONFIG = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=120)


@pytest.mark.parametrize("name, cls", [
    ("Tesla T4", "nvidia-t4"), ("NVIDIA A10G", "nvidia-a10g"), ("NVIDIA A10", "nvidia-a10"),
    ("NVIDIA L4", "nvidia-l4"), ("NVIDIA A100-SXM4-40GB", "nvidia-a100-40gb"),
    ("NVIDIA A100 80GB PCIe", "nvidia-a100-80gb"), ("NVIDIA H100 80GB HBM3", "nvidia-h100"),
    ("NVIDIA H100 NVL", "nvidia-h100-nvl"), ("Tesla V100-SXM2-16GB", "nvidia-v100"),
    ("Tesla V100-PCIE-16GB", "nvidia-v100-pcie"), ("NVIDIA H200", None)])
def test_a_gpu_name_maps_to_its_catalog_class(name, cls):
    assert gpu_runtimes.gpu_class_of(name) == cls
    if cls is not None:
        assert get_hardware(cls).kind == "gpu"


def test_without_the_provider_or_a_gpu_the_runtime_says_why_in_one_line(monkeypatch):
    monkeypatch.setattr(gpu_runtimes, "available_providers", lambda: ["CPUExecutionProvider"])
    reason = gpu_runtimes.unavailable_reason("onnxruntime-trt")
    assert "TensorrtExecutionProvider" in reason and "onnxruntime-gpu" in reason and "\n" not in reason
    with pytest.raises(OrtError, match="TensorrtExecutionProvider"):
        measure_onnxruntime(onnx.ModelProto(), {"x": [1, 4]}, runtime="onnxruntime-trt")
    monkeypatch.setattr(gpu_runtimes, "available_providers", lambda: ["CUDAExecutionProvider"])
    monkeypatch.setattr(gpu_runtimes, "local_gpu_name", lambda: None)
    assert gpu_runtimes.unavailable_reason("onnxruntime-cuda") == "onnxruntime-cuda: no NVIDIA GPU found (nvidia-smi)"
    monkeypatch.setattr(gpu_runtimes, "local_gpu_name", lambda: "NVIDIA H200")
    assert "not a hardware class" in gpu_runtimes.unavailable_reason("onnxruntime-cuda")
    monkeypatch.setattr(gpu_runtimes, "local_gpu_name", lambda: "Tesla T4")
    assert gpu_runtimes.unavailable_reason("onnxruntime-cuda") is None


def test_profiling_skips_a_gpu_runtime_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler_module, "unavailable_reason", lambda r: f"{r}: no NVIDIA GPU found (nvidia-smi)")
    piece = PieceSource(piece="tiny", onnx_path=two_kernel_model(tmp_path / "tiny.onnx"), input_shapes={"x": [1, 64]})
    report = profile_pieces([piece], ["nvidia-t4"], runtimes=("onnxruntime-trt",), config=CONFIG,
                            cache=ProfileCache(tmp_path / "profiles"))
    assert report.table.empty
    assert [(p.runtime, p.error_type, p.message) for p in report.problems] == [
        ("onnxruntime-trt", "GpuUnavailable", "onnxruntime-trt: no NVIDIA GPU found (nvidia-smi)")]


def test_gpu_classes_get_onnxruntime_cuda_and_trt_estimates_from_the_local_onnxruntime_rows():
    local, gpu = local_hardware(), get_hardware("nvidia-t4")
    calibration = default_calibration()
    assert calibrated_runtimes(gpu, calibration) == {"tvm", "onnxruntime-cuda", "onnxruntime-trt"}
    assert "onnxruntime-trt" not in calibrated_runtimes(get_hardware("x86-zen4-4c"), calibration)
    stats = {"p": KernelStats((Kernel("conv", "conv", 3.6e9, 4.7e7, 2.5e7, 1),), 1, "tir")}
    rows = calibrated_rows(_local_rows(local), local, gpu, stats, default_calibration())
    assert sorted(zip(rows[RUNTIME], rows[BATCH])) == [
        ("onnxruntime-cuda", 1), ("onnxruntime-cuda", 2), ("onnxruntime-trt", 1), ("onnxruntime-trt", 2),
        ("tvm", 1), ("tvm", 2)]
    assert (rows[SOURCE] == "estimated").all() and (rows[HARDWARE] == "nvidia-t4").all()
    for runtime, params in GPU_ORT.items():
        row = rows[(rows[RUNTIME] == runtime) & (rows[BATCH] == 1)].iloc[0]
        assert row[LATENCY_MS_P50] == pytest.approx(predict_ms(stats["p"], 1, gpu, params))
        assert row[ERROR_BAND] == pytest.approx(params.band_for(stats["p"].flops))
        assert "published" in params.source
    by = rows[rows[BATCH] == 1].set_index(RUNTIME)[LATENCY_MS_P50]
    # TensorRT fp16 beats the CUDA provider's fp32, which beats TVM's default schedules
    assert by["onnxruntime-trt"] < by["onnxruntime-cuda"] < by["tvm"]


def test_a_row_measured_on_the_gpu_lands_on_its_class_and_replaces_the_estimate(tmp_path, monkeypatch):
    real = profiler_module.measure_onnxruntime

    def fake(model, shapes, config, threads, *, prepare, sample_inputs, runtime="onnxruntime"):
        if runtime == "onnxruntime":
            return real(model, shapes, config, threads, prepare=prepare, sample_inputs=sample_inputs)
        return Measurement.from_samples(runtime, [0.25] * 5, memory_mb=12.0, memory_method="fake",
                                        runs_per_sample=1, measure_s=0.1)

    monkeypatch.setattr(profiler_module, "unavailable_reason", lambda r: None)
    monkeypatch.setattr(profiler_module, "local_gpu_class", lambda: "nvidia-t4")
    monkeypatch.setattr(profiler_module, "local_gpu_name", lambda: "Tesla T4")
    monkeypatch.setattr(profiler_module, "measure_onnxruntime", fake)
    piece = PieceSource(piece="tiny", onnx_path=two_kernel_model(tmp_path / "tiny.onnx"), input_shapes={"x": [1, 64]})
    report = profile_pieces([piece], ["nvidia-t4"], runtimes=("onnxruntime", "onnxruntime-trt"), config=CONFIG,
                            cache=ProfileCache(tmp_path / "profiles"))
    t4 = report.table[report.table[HARDWARE] == "nvidia-t4"].set_index(RUNTIME)
    assert t4.loc["onnxruntime-trt", SOURCE] == "measured-local"
    assert t4.loc["onnxruntime-trt", LATENCY_MS_P50] == pytest.approx(0.25)
    assert t4.loc["onnxruntime-cuda", SOURCE] == "estimated"
    local = report.table[report.table[HARDWARE] == local_hardware().name]
    assert list(local[RUNTIME]) == ["onnxruntime"]  # the GPU row is not this machine's


def _artifact(runtime: str) -> Artifact:
    unit = Unit("m", "m", "m", None, "cloud", "g4dn.xlarge", "nvidia-t4", runtime, None, 1)
    io = {"inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
          "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}]}
    return Artifact(unit=unit, onnx="artifacts/m/b1/model.onnx", io=io)


def test_triton_serves_a_tensorrt_piece_with_the_tensorrt_accelerator_at_fp16():
    trt = triton.config_text(_artifact("onnxruntime-trt"), gpu=True, queue_delay_us=100)
    assert triton.check_config(trt, _artifact("onnxruntime-trt")) == []
    [accelerator] = triton.parse_config(trt).optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and dict(accelerator.parameters) == {"precision_mode": "FP16"}
    for runtime, gpu in (("onnxruntime-cuda", True), ("onnxruntime-trt", False), ("onnxruntime", True)):
        config = triton.parse_config(triton.config_text(_artifact(runtime), gpu=gpu, queue_delay_us=100))
        assert not config.HasField("optimization")  # CUDA is the backend's default on a GPU
    bad = trt.replace('"FP16"', '"FP8"')
    assert any("precision_mode" in p for p in triton.check_config(bad))


def test_gpu_session_settings_name_their_providers_and_precision():
    trt = session_settings("nvidia-t4", "onnxruntime-trt")
    assert trt["execution_providers"][0] == "TensorrtExecutionProvider" and trt["precision"] == "fp16"
    assert trt["provider_options"]["TensorrtExecutionProvider"]["trt_fp16_enable"] == "True"
    cuda = session_settings("nvidia-t4", "onnxruntime-cuda")
    assert cuda["execution_providers"][0] == "CUDAExecutionProvider" and cuda["precision"] == "fp32"
    assert cuda["runtime"] == trt["runtime"] == "onnxruntime"
