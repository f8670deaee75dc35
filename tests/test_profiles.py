"""Profiles: ONNX preparation, TVM and ONNX Runtime measurement, the cache, estimates.

The default run uses tiny graphs built here (a TVM compile of one takes about a second);
tests that compile zoo models are marked `slow`.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from profiles import profiler as profiler_module
from profiles.cache import ProfileCache, profile_key
from profiles.estimate import (
    estimate_rows,
    estimated_runtimes,
    scale_factor,
)
from profiles.hardware import HardwareClass, local_hardware
from profiles.measure import ChildFailure, MeasureConfig, latency_stats, output_diff, run_in_child
from profiles.onnx_prep import (
    InputShapeError,
    OnnxLoadError,
    UnsupportedOpError,
    io_bytes,
    model_digest,
    prepare_onnx,
    random_inputs,
)
from profiles.ort_adapter import measure_onnxruntime
from profiles.paths import CACHE_ENV
from profiles.profiler import PieceSource, ProgressEvent, piece_io_bytes, profile_pieces
from profiles.table import (
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    LATENCY_MS_P95,
    MEMORY_MB,
    PIECE,
    PROFILE_COLUMNS,
    RUNTIME,
    SOURCE,
    validate_profile_table,
)
from profiles.tvm_adapter import TvmImportError, measure_tvm

FAST = MeasureConfig(warmup_runs=1, repeat=7, min_repeat_ms=1.0, max_measure_s=1.0, timeout_s=120)
# the two runtimes these tests are about (OpenVINO, a default where installed, has tests/test_openvino.py)
TVM_AND_ORT = ("tvm", "onnxruntime")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


# --- tiny models, exported the way torch does it ---------------------------------------------

def flatten_classifier(c: int = 3, hw: int = 8, k: int = 4, classes: int = 5) -> onnx.ModelProto:
    """Conv -> Relu -> x.view(x.size(0), -1) -> MatMul, with a symbolic batch dim.

    The flatten is Shape -> Gather(0) -> Unsqueeze -> Concat([n, -1]) -> Reshape, as in a
    torch.onnx export with dynamic axes; TVM's importer needs it folded."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((k, c, 3, 3)).astype(np.float32), "conv.weight"),
        numpy_helper.from_array(rng.standard_normal(k).astype(np.float32), "conv.bias"),
        numpy_helper.from_array((rng.standard_normal((k * hw * hw, classes)) * 0.1)
                                .astype(np.float32), "fc.weight"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Shape", ["relu"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["relu", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc.weight"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", c, hw, hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def celu_model() -> onnx.ModelProto:
    """Standard ONNX that ONNX Runtime runs but TVM's Relax importer has no converter for."""
    graph = helper.make_graph(
        [helper.make_node("Celu", ["x"], ["y"], alpha=1.0)], "celu_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


SHAPES = {"input": [1, 3, 8, 8]}


@pytest.fixture
def classifier_path(tmp_path):
    path = tmp_path / "classifier.onnx"
    onnx.save(flatten_classifier(), str(path))
    return path


# --- onnx_prep ---------------------------------------------------------------------------------

def test_prepare_fixes_dims_and_folds_shape_subgraph(classifier_path):
    model = prepare_onnx(classifier_path, {"input": [2, 3, 8, 8]})
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Shape", "Gather", "Concat", "Unsqueeze"}, ops
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 8, 8]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [2, 5]
    assert io_bytes(model).input_bytes == 2 * 3 * 8 * 8 * 4
    assert io_bytes(model).output_bytes == 2 * 5 * 4


def test_prepared_model_computes_what_the_original_does(classifier_path):
    import onnxruntime as ort

    model = prepare_onnx(classifier_path, SHAPES)
    feeds = random_inputs(model)
    before = ort.InferenceSession(str(classifier_path)).run(None, feeds)
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert output_diff(before, after)[0] < 1e-5


def test_wrong_input_name_names_it(classifier_path):
    with pytest.raises(InputShapeError, match="'image'.*not an input.*'input'"):
        prepare_onnx(classifier_path, {"image": [1, 3, 8, 8]})


def test_rank_mismatch_names_input(classifier_path):
    with pytest.raises(InputShapeError, match="input 'input' has rank 4"):
        prepare_onnx(classifier_path, {"input": [1, 3, 8]})


def test_dynamic_input_without_shape_is_an_error(classifier_path):
    with pytest.raises(InputShapeError, match="'input' has dynamic dims"):
        prepare_onnx(classifier_path, {})


def test_corrupt_onnx_names_the_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf\xff\xfe" * 10)
    with pytest.raises(OnnxLoadError, match="broken.onnx"):
        prepare_onnx(bad, SHAPES)
    with pytest.raises(OnnxLoadError, match="missing.onnx"):
        prepare_onnx(tmp_path / "missing.onnx", SHAPES)


def test_unknown_op_names_op_and_model():
    model = celu_model()
    model.graph.node[0].op_type = "Frobnicate"
    with pytest.raises(UnsupportedOpError, match="celu_net.*Frobnicate"):
        prepare_onnx(model, {"x": [1, 16]})


def test_model_digest_is_sha256_of_bytes(classifier_path):
    import hashlib

    assert model_digest(classifier_path) == hashlib.sha256(classifier_path.read_bytes()).hexdigest()


# --- measurement -------------------------------------------------------------------------------

def test_latency_stats_and_plan():
    p50, p95, mean = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert p50 == 3.0 and p95 > p50 and mean == 22.0
    config = MeasureConfig(repeat=30, min_repeat_ms=20, max_measure_s=8, min_samples=5)
    assert config.plan(0.5) == (30, 40)       # short runs: 40 per sample to last 20 ms
    assert config.plan(100.0) == (30, 1)      # 30 x 100 ms fits in 8 s
    assert config.plan(2000.0) == (5, 1)      # a 2 s model: the minimum 5 samples


def test_onnxruntime_measurement(classifier_path):
    m = measure_onnxruntime(flatten_classifier(), SHAPES, FAST, threads=1)
    assert m.runtime == "onnxruntime"
    assert m.latency_ms_p95 >= m.latency_ms_p50 > 0
    assert m.n_samples == 7 and m.memory_mb > 0 and m.memory_method == "rss-growth"


def test_tvm_imports_folded_model_runs_and_agrees_with_ort():
    m = measure_tvm(flatten_classifier(), SHAPES, local_hardware(), FAST)
    assert m.runtime == "tvm" and m.compile_s > 0
    assert m.latency_ms_p95 >= m.latency_ms_p50 > 0
    assert m.max_abs_diff_vs_ort is not None and m.max_abs_diff_vs_ort < 1e-4
    assert m.max_rel_diff_vs_ort < 1e-4
    # weights (3x3 conv, 256x5 fc) plus the planned intermediates and output
    weights = (4 * 3 * 3 * 3 + 4 + 256 * 5) * 4
    assert weights <= m.memory_mb * 2**20 < weights + 64 * 1024


def test_tvm_unsupported_op_is_typed_and_names_op():
    with pytest.raises(TvmImportError, match="Celu") as info:
        measure_tvm(celu_model(), {"x": [1, 16]}, local_hardware(), FAST)
    assert info.value.ops == ["Celu"]


def test_child_crash_becomes_typed_error(tmp_path):
    log = tmp_path / "child.log"
    with pytest.raises(ChildFailure) as info:
        run_in_child("profiles.child", "selftest_child", {"do": "crash"}, timeout_s=60,
                     log_path=log)
    assert info.value.stage == "selftest" and info.value.exitcode == -11
    assert "SIGSEGV" in str(info.value) and "about to crash" in info.value.log_tail
    with pytest.raises(ChildFailure, match="selftest asked to raise") as info:
        run_in_child("profiles.child", "selftest_child", {"do": "raise"}, timeout_s=60)
    assert info.value.error_type == "ValueError"
    with pytest.raises(ChildFailure, match="timed out"):
        run_in_child("profiles.child", "selftest_child", {"do": "hang"}, timeout_s=3)
    assert run_in_child("profiles.child", "selftest_child", {"do": "ok"}, timeout_s=60) == {
        "echo": {"do": "ok"}}


# --- cache and profiler ------------------------------------------------------------------------

def test_profile_key_depends_on_what_is_measured():
    base = {"model_digest": "abc", "input_shapes": {"x": [1, 3]}, "hardware": "h",
            "runtime": "tvm", "batch": 1, "tvm_version": "0.27", "config": FAST}
    key = profile_key(**base)
    assert key == profile_key(**{**base, "config": FAST.model_copy(update={"timeout_s": 5})})
    for change in ({"input_shapes": {"x": [2, 3]}}, {"runtime": "onnxruntime"},
                   {"config": FAST.model_copy(update={"repeat": 8})}, {"tvm_version": "0.28"},
                   {"hardware": "g"}, {"model_digest": "abd"}):
        assert profile_key(**{**base, **change}) != key, change


def test_cache_roundtrip_and_unreadable_file(tmp_path):
    cache = ProfileCache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", {"a": 1})
    assert cache.get("k") == {"a": 1} and len(cache) == 1
    cache.path("k").write_text("{ not json")
    assert cache.get("k") is None


def _counting(monkeypatch):
    calls = {"tvm": 0, "onnxruntime": 0}
    real_tvm, real_ort = profiler_module.measure_tvm, profiler_module.measure_onnxruntime

    def tvm(*args, **kwargs):
        calls["tvm"] += 1
        return real_tvm(*args, **kwargs)

    def ort(*args, **kwargs):
        calls["onnxruntime"] += 1
        return real_ort(*args, **kwargs)

    monkeypatch.setattr(profiler_module, "measure_tvm", tvm)
    monkeypatch.setattr(profiler_module, "measure_onnxruntime", ort)
    return calls


def test_second_profile_run_measures_nothing(tmp_path, classifier_path, monkeypatch):
    calls = _counting(monkeypatch)
    cache = ProfileCache(tmp_path / "profiles")
    pieces = [PieceSource(piece="classifier", onnx_path=classifier_path, input_shapes=SHAPES)]
    events: list[ProgressEvent] = []
    first = profile_pieces(pieces, [], runtimes=TVM_AND_ORT, config=FAST, cache=cache, on_progress=events.append)
    assert calls == {"tvm": 1, "onnxruntime": 1} and not first.problems
    assert events[-1].done == events[-1].total == 2
    table = validate_profile_table(first.table)
    assert list(table.columns) == PROFILE_COLUMNS
    assert set(table[RUNTIME]) == {"tvm", "onnxruntime"}
    assert (table[HARDWARE] == local_hardware().name).all()
    assert (table[SOURCE] == "measured-local").all()
    assert (table[LATENCY_MS_P95] >= table[LATENCY_MS_P50]).all() and (table[LATENCY_MS_P50] > 0).all()

    def no_prepare(*args, **kwargs):
        raise AssertionError("a warm run must not prepare the model again")

    real_prepare = profiler_module.prepare_onnx
    monkeypatch.setattr(profiler_module, "prepare_onnx", no_prepare)
    second = profile_pieces(pieces, [], runtimes=TVM_AND_ORT, config=FAST, cache=cache)
    assert calls == {"tvm": 1, "onnxruntime": 1}
    assert piece_io_bytes(pieces[0], cache).output_bytes == 5 * 4
    monkeypatch.setattr(profiler_module, "prepare_onnx", real_prepare)
    pd.testing.assert_frame_equal(first.table, second.table)
    # a different config is a different measurement
    profile_pieces(pieces, [], runtimes=("onnxruntime",), config=FAST.model_copy(update={"repeat": 6}),
                   cache=cache)
    assert calls == {"tvm": 1, "onnxruntime": 2}


def test_tvm_import_failure_is_recorded_and_ort_still_measured(tmp_path, monkeypatch):
    path = tmp_path / "celu.onnx"
    onnx.save(celu_model(), str(path))
    calls = _counting(monkeypatch)
    cache = ProfileCache(tmp_path / "profiles")
    pieces = [PieceSource(piece="celu", onnx_path=path, input_shapes={"x": [1, 16]})]
    report = profile_pieces(pieces, [], runtimes=TVM_AND_ORT, config=FAST, cache=cache)
    assert list(report.table[RUNTIME]) == ["onnxruntime"]
    [problem] = report.problems
    assert problem.runtime == "tvm" and problem.error_type == "TvmImportError"
    assert "Celu" in problem.message
    again = profile_pieces(pieces, [], runtimes=TVM_AND_ORT, config=FAST, cache=cache)  # the failure is cached too
    assert calls == {"tvm": 1, "onnxruntime": 1} and len(again.problems) == 1


def test_profile_pieces_adds_estimated_rows(tmp_path, classifier_path):
    other = "arm-cortex-a76-4c"
    pieces = [PieceSource(piece="classifier", onnx_path=classifier_path, input_shapes=SHAPES)]
    report = profile_pieces(pieces, [other], runtimes=TVM_AND_ORT, config=FAST, cache=ProfileCache(tmp_path / "p"))
    table = validate_profile_table(report.table)
    local = table[table[HARDWARE] == local_hardware().name].set_index(RUNTIME)
    estimated = table[table[HARDWARE] == other].set_index(RUNTIME)
    assert set(estimated.index) == {"tvm", "onnxruntime"}
    assert (estimated[SOURCE] == "estimated").all()
    assert (estimated[ERROR_BAND] > 0).all()  # an Arm estimate from an x86 fit: a wide band
    assert local[ERROR_BAND].isna().all()
    assert estimated.loc["tvm", LATENCY_MS_P50] > local.loc["tvm", LATENCY_MS_P50]  # the Pi 5 is slower
    assert (estimated[MEMORY_MB] == local[MEMORY_MB]).all()
    assert piece_io_bytes(pieces[0]).input_bytes == 3 * 8 * 8 * 4
    with pytest.raises(ValueError, match="unknown hardware class"):
        profile_pieces(pieces, ["no-such-class"], config=FAST)


def test_a_tiny_model_is_not_estimated_faster_on_a_slower_class(tmp_path, classifier_path):
    """Issue 15 item 5: a tiny model's time is the runtime's fixed costs, fitted on small pieces
    here and scaled by core speed, so a Pi 5 core (a third of this one's peak) pays more."""
    pieces = [PieceSource(piece="classifier", onnx_path=classifier_path, input_shapes=SHAPES)]
    report = profile_pieces(pieces, ["arm-cortex-a76-4c"], runtimes=("onnxruntime",), config=FAST,
                            cache=ProfileCache(tmp_path / "p"))
    table = report.table.set_index(HARDWARE)
    assert table.loc["arm-cortex-a76-4c", LATENCY_MS_P50] > table.loc[local_hardware().name, LATENCY_MS_P50]


def _hardware(name, kind, target, gflops, bw, overhead=0.0) -> HardwareClass:
    return HardwareClass(name=name, kind=kind, arch="x86_64", cores=1, tvm_target=target,
                         peak_gflops=gflops, mem_bandwidth_gbs=bw, overhead_ms=overhead,
                         sources=["test"])


def test_estimate_formula_and_runtimes_per_kind():
    local = _hardware("here", "cpu", {"kind": "llvm"}, 100.0, 20.0)
    gpu = _hardware("gpu", "gpu", {"kind": "cuda", "arch": "sm_75"}, 8000.0, 300.0, overhead=0.5)
    npu = _hardware("npu", "npu", None, 1000.0, 50.0, overhead=1.0)
    slow_cpu = _hardware("slow", "cpu", {"kind": "llvm"}, 50.0, 40.0)
    rows = pd.DataFrame([
        {PIECE: "p", HARDWARE: "here", RUNTIME: rt, "batch": 1, LATENCY_MS_P50: 10.0,
         LATENCY_MS_P95: 12.0, MEMORY_MB: 30.0, SOURCE: "measured-local",
         "measured_at": "2025-01-01T00:00:00+00:00", "tvm_version": "0.27", ERROR_BAND: math.nan}
        for rt in ("tvm", "onnxruntime")
    ])
    assert estimated_runtimes(gpu) == ("tvm",) and estimated_runtimes(npu) == ("onnxruntime",)
    g = estimate_rows(rows, local, gpu)
    assert list(g[RUNTIME]) == ["tvm"]
    factor = max(100 / 8000, 20 / 300)
    assert g[LATENCY_MS_P50].iloc[0] == pytest.approx(10 * factor + 0.5)
    n = estimate_rows(rows, local, npu)
    assert list(n[RUNTIME]) == ["onnxruntime"]
    s = estimate_rows(rows, local, slow_cpu)
    assert scale_factor(local, slow_cpu) == 2.0  # compute-bound ratio wins over bandwidth
    assert list(s[LATENCY_MS_P95]) == [24.0, 24.0]
    assert (s[SOURCE] == "estimated").all() and (s[ERROR_BAND] == 0.5).all()


# --- zoo models (minutes on 2 cores) -----------------------------------------------------------

@pytest.mark.slow
def test_zoo_mobilenetv2_tvm_agrees_with_ort():
    from profiles.zoo import zoo_input_shapes, zoo_model_path

    shapes = zoo_input_shapes("mobilenetv2")
    model = prepare_onnx(zoo_model_path("mobilenetv2"), shapes)
    m = measure_tvm(model, shapes, local_hardware(), FAST)
    assert m.max_abs_diff_vs_ort < 1e-3 and m.max_rel_diff_vs_ort < 1e-3
    assert m.latency_ms_p95 >= m.latency_ms_p50 > 0


@pytest.mark.slow
def test_zoo_transformer_prepares_and_runs_under_tvm():
    from profiles.zoo import zoo_input_shapes, zoo_model_path

    shapes = zoo_input_shapes("transformer-encoder")
    model = prepare_onnx(zoo_model_path("transformer-encoder"), shapes)
    assert not any(n.op_type == "Shape" for n in model.graph.node)
    m = measure_tvm(model, shapes, local_hardware(), FAST)
    assert m.max_rel_diff_vs_ort < 1e-3
