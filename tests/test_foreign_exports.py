"""Real tf2onnx (TensorFlow/Keras) and paddle2onnx (PaddlePaddle) exports: preparation, both
runtimes, the profile path.

The fixtures in tests/data/foreign/ were written once by tests/data/foreign/make_foreign_exports.py
(see the README there); neither TensorFlow nor Paddle is needed here. Each `<name>.onnx` has a
`<name>.npz` with a batch-1 input and the framework's own output on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from profiles.measure import MeasureConfig
from profiles.onnx_prep import graph_inputs, prepare_onnx, random_inputs
from profiles.profiler import PieceSource, profile_pieces
from profiles.table import RUNTIME, SOURCE, validate_profile_table

FOREIGN = Path(__file__).parent / "data" / "foreign"
FAST = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=300)
# the two runtimes these tests are about (OpenVINO, a default where installed, has tests/test_openvino.py)
TVM_AND_ORT = ("tvm", "onnxruntime")


@dataclass(frozen=True)
class Fixture:
    name: str
    exporter: str  # "tf2onnx" or "paddle2onnx"
    opset: int
    input_name: str
    shape: tuple[int, ...]  # batch 1; dim 0 is symbolic in the file

    @property
    def path(self) -> Path:
        return FOREIGN / f"{self.name}.onnx"

    @property
    def input_shapes(self) -> dict[str, list[int]]:
        return {self.input_name: list(self.shape)}

    def at_batch(self, batch: int) -> dict[str, list[int]]:
        return {self.input_name: [batch, *self.shape[1:]]}


FIXTURES = {f.name: f for f in [
    Fixture("tf-cnn-o13", "tf2onnx", 13, "input", (1, 32, 32, 3)),
    Fixture("tf-mobile-o17", "tf2onnx", 17, "image", (1, 48, 48, 3)),
    Fixture("paddle-cnn-o11", "paddle2onnx", 11, "x", (1, 3, 32, 32)),
    Fixture("paddle-mlp-o13", "paddle2onnx", 13, "tokens", (1, 16, 32)),
]}


def _reference(f: Fixture) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(FOREIGN / f"{f.name}.npz")
    return data["input"], data["output"]


def test_every_fixture_file_is_listed_and_small():
    on_disk = {p.stem for p in FOREIGN.glob("*.onnx")}
    assert on_disk == set(FIXTURES)
    for f in FIXTURES.values():
        assert f.path.stat().st_size < 1_500_000
        assert (FOREIGN / f"{f.name}.npz").is_file()


@pytest.mark.parametrize("name", list(FIXTURES))
def test_fixture_is_a_dynamic_batch_export_at_its_opset(name):
    f = FIXTURES[name]
    model = onnx.load(str(f.path))
    onnx.checker.check_model(model)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {f.opset}
    if f.exporter == "tf2onnx":
        assert model.producer_name == "tf2onnx"
        # tf2onnx keeps Keras' NHWC layout and transposes around every Conv
        assert any(n.op_type == "Transpose" for n in model.graph.node)
    [inp] = graph_inputs(model)
    assert inp.name == f.input_name
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value"), "the batch dim should be symbolic"
    assert [d.dim_value for d in dims[1:]] == list(f.shape[1:])


@pytest.mark.parametrize("name", list(FIXTURES))
def test_prepared_export_matches_the_framework(name):
    f = FIXTURES[name]
    prepared = prepare_onnx(f.path, f.input_shapes)
    assert not any(n.op_type == "Shape" for n in prepared.graph.node)
    assert all(d.dim_value > 0 for o in prepared.graph.output for d in o.type.tensor_type.shape.dim)
    x, want = _reference(f)
    assert list(x.shape) == list(f.shape)
    got = ort.InferenceSession(prepared.SerializeToString()).run(None, {f.input_name: x})
    np.testing.assert_allclose(got[0], want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_prepared_at_another_batch_matches_the_unprepared_export(name):
    f = FIXTURES[name]
    prepared = prepare_onnx(f.path, f.at_batch(3))
    feeds = random_inputs(prepared, seed=7)
    got = ort.InferenceSession(prepared.SerializeToString()).run(None, feeds)
    want = ort.InferenceSession(str(f.path)).run(None, feeds)
    assert got[0].shape[0] == 3
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_profile_path_measures_both_runtimes_and_tvm_agrees_with_ort(name):
    """TVM imports, compiles and runs each export through the adapter (`measure_tvm`, called
    by `profile_pieces`), which compares its outputs with ONNX Runtime on a random input."""
    f = FIXTURES[name]
    source = PieceSource(piece=f.name, onnx_path=f.path, input_shapes=f.input_shapes)
    report = profile_pieces([source], [], runtimes=TVM_AND_ORT, config=FAST)
    assert report.problems == []
    table = validate_profile_table(report.table)
    assert sorted(table[RUNTIME]) == ["onnxruntime", "tvm"]
    assert set(table[SOURCE]) == {"measured-local"}
    agreement = report.agreement()
    assert list(agreement["piece"]) == [name]
    assert agreement["max_rel_diff"].iloc[0] < 1e-4 and agreement["max_abs_diff"].iloc[0] < 1e-3
