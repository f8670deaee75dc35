"""OpenVINO as a runtime: latency-oriented settings, measured here and cached like ONNX Runtime,
estimated on other CPU classes with a fitted calibration whose band says how it was fitted.

Measurement tests skip when the `openvino` package is missing; the rest need no OpenVINO.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from placement.plan import Plan
from profiles import profiler as profiler_module
from profiles.cache import ProfileCache
from profiles.calibration import FITTED_CPU, Calibration, current_calibration, default_calibration
from profiles.estimate import calibrated_rows
from profiles.hardware import get_hardware, local_hardware
from profiles.kernel_stats import Kernel, KernelStats
from profiles.measure import MeasureConfig
from profiles.openvino_adapter import OpenVinoError, compile_config, openvino_available
from profiles.profiler import MEASURABLE_RUNTIMES, PieceSource, profile_pieces
from profiles.rows import measured_row
from profiles.table import (
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    RUNTIME,
    SOURCE,
    validate_profile_table,
)

FAST = MeasureConfig(warmup_runs=1, repeat=7, min_repeat_ms=1.0, max_measure_s=1.0, timeout_s=120)
needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


def mlp(width: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), "w1"),
         numpy_helper.from_array(rng.standard_normal((width, 8)).astype(np.float32), "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def mlp_source(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), str(path))
    return PieceSource(piece="mlp", onnx_path=path, input_shapes={"x": [1, 64]})


def test_compile_config_is_latency_oriented_with_the_class_cores():
    config = compile_config(threads=local_hardware().cores)
    assert config["PERFORMANCE_HINT"] == "LATENCY"
    assert config["INFERENCE_NUM_THREADS"] == str(local_hardware().cores)
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and config["NUM_STREAMS"] == "1"
    assert "openvino" in MEASURABLE_RUNTIMES


@needs_openvino
def test_openvino_is_measured_cached_and_agrees_with_onnxruntime(mlp_source, monkeypatch):
    cache = ProfileCache()
    report = profile_pieces([mlp_source], [], runtimes=("openvino",), config=FAST, cache=cache)
    assert not [p for p in report.problems if p.error_type != "Contention"]  # a busy machine is noted, not failed
    row = report.table.iloc[0]
    assert (row[RUNTIME], row[SOURCE], row[HARDWARE]) == ("openvino", "measured-local", local_hardware().name)
    m = report.measurements[("mlp", "openvino")]
    assert m.runtime == "openvino" and m.threads == local_hardware().cores and m.memory_mb > 0
    assert m.max_rel_diff_vs_ort is not None and m.max_rel_diff_vs_ort < 1e-4
    validate_profile_table(report.table)

    def must_not_measure(*args, **kwargs):
        raise AssertionError("a cached OpenVINO row was measured again")

    monkeypatch.setattr(profiler_module, "measure_openvino", must_not_measure)
    again = profile_pieces([mlp_source], [], runtimes=("openvino",), config=FAST, cache=cache)
    assert again.table[LATENCY_MS_P50].iloc[0] == row[LATENCY_MS_P50]


@needs_openvino
def test_openvino_cache_key_differs_from_onnxruntime_and_names_the_version(mlp_source):
    extra = profiler_module.profile_extra()
    assert profiler_module._runtime_extra(extra, "onnxruntime") == extra
    assert "openvino" in profiler_module._runtime_extra(extra, "openvino")


def test_a_failing_openvino_is_a_problem_not_a_crash(mlp_source, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise OpenVinoError("mlp: OpenVINO failed during compile: boom")

    monkeypatch.setattr(profiler_module, "measure_openvino", broken)
    report = profile_pieces([mlp_source], [], runtimes=("onnxruntime", "openvino"), config=FAST,
                            cache=ProfileCache(tmp_path / "own-cache"))  # no row cached by another test
    assert list(report.table[RUNTIME]) == ["onnxruntime"]
    # (a loaded machine may add a contention note for the onnxruntime row: not this test's subject)
    assert [p.error_type for p in report.problems if p.runtime == "openvino"] == ["OpenVinoError"]


def _stats() -> KernelStats:
    return KernelStats(kernels=(Kernel(name="conv", kind="conv", flops=2e9, const_bytes=4e6,
                                       act_bytes=2e6, calls=1),), batch=1, method="onnx")


def test_openvino_rows_are_estimated_on_other_cpu_classes_with_a_fitted_band():
    local = get_hardware("x86-zen4-2c")
    from profiles.measure import Measurement

    m = Measurement.from_samples("openvino", [10.0, 11.0, 12.0], memory_mb=50.0,
                                 memory_method="rss-growth", runs_per_sample=1, measure_s=1.0)
    table = pd.DataFrame([measured_row("p", local.name, "openvino", 1, m, source="measured-local",
                                       tvm_version="x")])
    calibration = default_calibration()  # the built-in fit (`bench/runtimes.py --fit`, 33 rows)
    own = calibration.cpu["openvino"]
    assert "fitted on" in own.source and own != calibration.cpu["onnxruntime"] and own.residuals
    for name in ("x86-spr-8c", "arm-cortex-a76-4c"):
        hw = get_hardware(name)
        rows = calibrated_rows(table, local, hw, {"p": _stats()}, calibration)
        assert list(rows[RUNTIME]) == ["openvino"] and list(rows[SOURCE]) == ["estimated"]
        params = calibration.params(hw, "openvino")
        assert math.isclose(rows[ERROR_BAND].iloc[0], params.band_for(_stats().flops))
        if hw.arch != "x86_64":
            assert "transferred to aarch64" in params.source
    gpu = calibrated_rows(table, local, get_hardware("nvidia-t4"), {"p": _stats()}, calibration)
    assert "openvino" not in set(gpu[RUNTIME])


def test_a_stored_calibration_keeps_the_builtin_fit_of_a_runtime_it_lacks(tmp_path):
    from profiles.calibration import save_calibration
    from profiles.store import ProfileStore

    store = ProfileStore(tmp_path / "rows.sqlite")
    mine = FITTED_CPU["onnxruntime"].model_copy(update={"source": "mine"})
    save_calibration(Calibration(cpu={"onnxruntime": mine}, fitted_on="old"), store)
    current = current_calibration(store)
    assert set(FITTED_CPU) <= set(current.cpu) and current.cpu["onnxruntime"].source == "mine"


def test_plan_and_profile_table_accept_the_openvino_runtime():
    schema = Plan.model_json_schema()
    assert "openvino" in json.dumps(schema)
    validate_profile_table(pd.DataFrame([{
        "piece": "p", "hardware": "x86-zen4-2c", "runtime": "openvino", "batch": 1,
        "latency_ms_p50": 1.0, "latency_ms_p95": 1.2, "memory_mb": 10.0, "source": "measured-local",
        "measured_at": "2026-01-01", "tvm_version": "0.27", "error_band": float("nan")}]))
