"""Batch sweeps: rows per batch (measured and estimated), fixed batch dims, the memory bound,
and rows from the row providers passed in (tuned, remote)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import profiles.profiler as profiler_module
from profiles.cache import ProfileCache
from profiles.hardware import local_hardware
from profiles.measure import MeasureConfig
from profiles.paths import CACHE_ENV
from profiles.profiler import (
    PieceSource,
    batch_ladder,
    batch_mode,
    profile_pieces,
    rebatched_shapes,
)
from profiles.table import (
    BATCH,
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    PIECE,
    RUNTIME,
    SOURCE,
    validate_profile_table,
)

FAST = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=120)
ORT = ("onnxruntime",)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def classifier(batch_dim, flatten: str = "Flatten") -> onnx.ModelProto:
    """Conv → Relu → flatten → MatMul. `batch_dim`: "batch" (symbolic) or 1 (fixed).
    flatten="Reshape1": Reshape to the constant [1, -1], which only works at batch 1."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((512, 10)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "one_row")]
    flat = (helper.make_node("Flatten", ["r"], ["f"]) if flatten == "Flatten"
            else helper.make_node("Reshape", ["r", "one_row"], ["f"]))
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), flat,
             helper.make_node("MatMul", ["f", "fc"], ["out"])]
    graph = helper.make_graph(
        nodes, "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch_dim, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


SHAPES = {"input": [1, 3, 8, 8]}


def _source(tmp_path, model, name="clf") -> PieceSource:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return PieceSource(piece=name, onnx_path=path, input_shapes=SHAPES)


def test_batch_ladder_and_shapes(tmp_path):
    assert batch_ladder(32) == (1, 2, 4, 8, 16, 32) and batch_ladder(5) == (1, 2, 4)
    source = _source(tmp_path, classifier("batch"))
    assert rebatched_shapes(source, 8) == {"input": [8, 3, 8, 8]}
    assert batch_mode(source) == "symbolic"
    assert batch_mode(_source(tmp_path, classifier(1), "fixed")) == "fixed"


def test_symbolic_batch_gives_a_row_per_batch_and_estimates_carry_them(tmp_path):
    source = _source(tmp_path, classifier("batch"))
    cache = ProfileCache(tmp_path / "profiles")
    report = profile_pieces([source], ["arm-cortex-a76-4c"], runtimes=ORT, config=FAST,
                            cache=cache, batches=(1, 2, 4))
    table = validate_profile_table(report.table)
    local = table[table[HARDWARE] == local_hardware().name]
    assert sorted(local[BATCH]) == [1, 2, 4] and not report.problems
    estimated = table[table[SOURCE] == "estimated"]
    assert sorted(estimated[BATCH]) == [1, 2, 4]
    est = estimated.set_index(BATCH)[LATENCY_MS_P50]
    assert est[1] < est[2] < est[4]  # more work per call at a larger batch
    assert {(p, r, b) for p, r, b in report.batch_measurements} == {
        ("clf", "onnxruntime", b) for b in (1, 2, 4)}
    # each batch is its own cached measurement: a second sweep measures nothing
    calls = []
    real = profiler_module.measure_onnxruntime
    profiler_module.measure_onnxruntime = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        again = profile_pieces([source], [], runtimes=ORT, config=FAST, cache=cache,
                               batches=(1, 2, 4))
    finally:
        profiler_module.measure_onnxruntime = real
    assert not calls and sorted(again.table[BATCH]) == [1, 2, 4]


def test_default_is_the_given_shapes_only(tmp_path):
    report = profile_pieces([_source(tmp_path, classifier("batch"))], [], runtimes=ORT,
                            config=FAST)
    assert list(report.table[BATCH]) == [1]


def test_fixed_batch_that_can_be_reset_safely_is_swept(tmp_path):
    source = _source(tmp_path, classifier(1), "fixed_ok")
    report = profile_pieces([source], [], runtimes=ORT, config=FAST, batches=(1, 2))
    assert sorted(report.table[BATCH]) == [1, 2] and not report.problems


def test_fixed_batch_baked_into_a_reshape_is_batch_1_only(tmp_path):
    source = _source(tmp_path, classifier(1, flatten="Reshape1"), "fixed_bad")
    report = profile_pieces([source], [], runtimes=ORT, config=FAST, batches=(1, 2, 4))
    assert list(report.table[BATCH]) == [1]
    [problem] = report.problems
    assert problem.error_type == "FixedBatch" and "fixed_bad" in problem.message
    assert "batch 1 only" in problem.message


def test_memory_bound_stops_the_sweep(tmp_path):
    source = _source(tmp_path, classifier("batch"))
    report = profile_pieces([source], [], runtimes=ORT, config=FAST, batches=(1, 2, 4, 8),
                            max_batch_memory_mb=0.001)
    assert list(report.table[BATCH]) == [1]
    [problem] = report.problems
    assert problem.error_type == "BatchMemoryLimit" and "batch 2 and above" in problem.message


def test_row_providers_are_appended_and_replace_estimates(tmp_path):
    source = _source(tmp_path, classifier("batch"))
    seen = {}

    def tuned(pieces, hardware_names):
        seen["pieces"], seen["hardware"] = [p.piece for p in pieces], hardware_names
        base = {PIECE: "clf", RUNTIME: "tvm-tuned", BATCH: 1, LATENCY_MS_P50: 0.1,
                "latency_ms_p95": 0.12, "memory_mb": 1.0, "measured_at": "2025-01-01",
                "tvm_version": "0.27", ERROR_BAND: float("nan")}
        return [{**base, HARDWARE: local_hardware().name, SOURCE: "measured-local"},
                # a measured-rpc row for a class that would otherwise be estimated
                {**base, HARDWARE: "arm-cortex-a76-4c", RUNTIME: "onnxruntime",
                 SOURCE: "measured-rpc"}]

    def broken(pieces, hardware_names):
        raise RuntimeError("tuning database unreadable")

    report = profile_pieces([source], ["arm-cortex-a76-4c"], runtimes=ORT, config=FAST,
                            row_providers=[tuned, broken])
    table = validate_profile_table(report.table)
    assert seen == {"pieces": ["clf"], "hardware": [local_hardware().name, "arm-cortex-a76-4c"]}
    assert "tvm-tuned" in set(table[RUNTIME])
    pi = table[(table[HARDWARE] == "arm-cortex-a76-4c") & (table[RUNTIME] == "onnxruntime")]
    assert list(pi[SOURCE]) == ["measured-rpc"]  # the estimate gave way to the real row
    assert [p.message for p in report.problems] == [
        "row provider test_row_providers_are_appended_and_replace_estimates.<locals>.broken "
        "failed: tuning database unreadable"]
