"""Real torch.onnx exports: preparation, both runtimes, an op TVM cannot import, batch sweeps.

Skipped without torch (`pip install torch==2.13.0`, CPU wheel). Exports are written once per
session into a temp dir (~20 s); TVM runs on the larger exports are marked slow.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from profiles.exported import (  # noqa: E402
    EXPORTED_MODELS,
    RECIPES,
    available_models,
    export_model,
    torch_reference,
)
from profiles.hardware import local_hardware  # noqa: E402
from profiles.measure import MeasureConfig  # noqa: E402
from profiles.onnx_prep import prepare_onnx, random_inputs  # noqa: E402
from profiles.profiler import PieceSource, profile_pieces  # noqa: E402
from profiles.table import BATCH, RUNTIME, validate_profile_table  # noqa: E402
from profiles.tvm_adapter import TvmImportError, measure_tvm  # noqa: E402

FAST = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=300)
# the two runtimes these tests are about (OpenVINO, a default where installed, has tests/test_openvino.py)
TVM_AND_ORT = ("tvm", "onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("exported")
    return {name: export_model(name, directory) for name in available_models()}


def _source(e) -> PieceSource:
    return PieceSource(piece=e.name, onnx_path=e.path, input_shapes=e.input_shapes)


def test_at_least_four_models_across_opsets(exported):
    assert len(exported) >= 4
    opsets = {e.opset for e in exported.values()}
    assert {11, 13, 14, 17} <= opsets
    for e in exported.values():
        model = onnx.load(str(e.path))
        assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {e.opset}
        first = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert first.dim_param, f"{e.name}: the batch dim should be symbolic"
    assert set(EXPORTED_MODELS) >= set(exported)


def test_second_export_reuses_the_file(exported, tmp_path):
    e = exported["torch-gru"]
    before = e.path.stat().st_mtime_ns
    again = export_model("torch-gru", e.path.parent)
    assert again.path == e.path and e.path.stat().st_mtime_ns == before


@pytest.mark.parametrize("name", [n for n in EXPORTED_MODELS if RECIPES[n].exporter != "dynamo"])
def test_prepared_export_matches_torch(exported, name):
    e = exported[name]
    prepared = prepare_onnx(e.path, e.input_shapes)
    assert not any(n.op_type == "Shape" for n in prepared.graph.node)
    assert all(d.dim_value > 0 for o in prepared.graph.output for d in o.type.tensor_type.shape.dim)
    feeds = random_inputs(prepared, seed=4)
    if name == "torch-transformer":
        feeds = {k: np.random.default_rng(4).integers(0, 8000, v.shape) for k, v in feeds.items()}
    got = ort.InferenceSession(prepared.SerializeToString()).run(None, feeds)
    want = torch_reference(name, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-3, atol=1e-4)


def test_opset_21_export_when_the_dynamo_exporter_is_available(exported):
    if "torch-convnet-o21" not in exported:
        pytest.skip("onnxscript not installed: no dynamo exporter for opset 21")
    e = exported["torch-convnet-o21"]
    prepared = prepare_onnx(e.path, e.input_shapes)
    feeds = random_inputs(prepared)
    got = ort.InferenceSession(prepared.SerializeToString()).run(None, feeds)
    np.testing.assert_allclose(got[0], torch_reference(e.name, feeds)[0], rtol=1e-3, atol=1e-4)


def test_gru_tvm_cannot_import_names_op_and_model_ort_still_profiled(exported):
    e = exported["torch-gru"]
    with pytest.raises(TvmImportError, match="GRU") as info:
        measure_tvm(prepare_onnx(e.path, e.input_shapes), e.input_shapes, local_hardware(), FAST)
    assert "GRU" in info.value.ops
    report = profile_pieces([_source(e)], [], runtimes=TVM_AND_ORT, config=FAST)
    assert list(report.table[RUNTIME]) == ["onnxruntime"]
    [problem] = report.problems
    assert problem.runtime == "tvm" and problem.error_type == "TvmImportError"
    assert "GRU" in problem.message and "torch-gru" in problem.message


def test_tvm_agrees_with_ort_on_a_small_export(exported):
    name = "torch-convnet-o21" if "torch-convnet-o21" in exported else "torch-gru"
    if name == "torch-gru":
        pytest.skip("needs the opset-21 export (onnxscript)")
    report = profile_pieces([_source(exported[name])], [], runtimes=TVM_AND_ORT, config=FAST)
    agreement = report.agreement()
    assert list(agreement["piece"]) == [name]
    assert agreement["max_rel_diff"].iloc[0] < 1e-4 and agreement["max_abs_diff"].iloc[0] < 1e-3


def test_batch_sweep_on_an_export(exported):
    report = profile_pieces([_source(exported["torch-mobilenet"])], [], runtimes=("onnxruntime",),
                            config=FAST, batches=(1, 2, 4))
    table = validate_profile_table(report.table)
    assert sorted(table[BATCH]) == [1, 2, 4] and not report.problems


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torch-resnet18", "torch-mobilenet", "torch-transformer"])
def test_tvm_runs_exports_and_agrees_with_ort(exported, name):
    e = exported[name]
    m = measure_tvm(prepare_onnx(e.path, e.input_shapes), e.input_shapes, local_hardware(), FAST)
    assert m.max_rel_diff_vs_ort < 1e-3
