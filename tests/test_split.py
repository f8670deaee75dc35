"""Model splitting: cut tensors, head/tail extraction, head→tail reproduces the whole model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from profiles.onnx_prep import prepare_onnx, random_inputs
from profiles.paths import CACHE_ENV
from profiles.profiler import PieceSource, profile_pieces
from profiles.split import (
    Cut,
    SplitError,
    all_cuts,
    candidate_cuts,
    cut_tensors,
    split_model,
    split_piece_names,
    split_sources,
)
from profiles.zoo import zoo_input_shapes, zoo_model_path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def residual_net() -> onnx.ModelProto:
    """input → Conv(stem) → Relu → [Conv → Relu → Conv] + skip → Relu → Conv(s2) → GAP → MatMul.

    Cuts: the stem's Relu output (`stem`), the block output (`block`), the strided conv's output
    and the pooled features; nothing inside the residual branch (the skip bypasses it)."""
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("w0", w(8, 3, 3, 3)), ("w1", w(8, 8, 3, 3)), ("w2", w(8, 8, 3, 3)),
        ("w3", w(4, 8, 3, 3)), ("fc", w(4, 5)))]
    nodes = [
        helper.make_node("Conv", ["input", "w0"], ["stem_conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["stem_conv"], ["stem"]),
        helper.make_node("Conv", ["stem", "w1"], ["b1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b1"], ["b1r"]),
        helper.make_node("Conv", ["b1r", "w2"], ["b2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["b2", "stem"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["block"]),
        helper.make_node("Conv", ["block", "w3"], ["down"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["down"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "residual_net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


SHAPES = {"input": [1, 3, 16, 16]}


def _run(model: onnx.ModelProto, feeds) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)


def assert_chain_reproduces(model, shapes, tensor) -> None:
    whole = prepare_onnx(model, shapes)
    feeds = random_inputs(whole, seed=3)
    head, tail = split_model(model, shapes, tensor)
    assert [o.name for o in head.graph.output] == [tensor]
    assert [i.name for i in tail.graph.input] == [tensor]
    middle = _run(head, feeds)
    got = _run(tail, {tensor: middle[0]})
    want = _run(whole, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_cut_tensors_of_a_residual_net():
    prepared = prepare_onnx(residual_net(), SHAPES)
    cuts = cut_tensors(prepared)
    names = {n.output[0] for n in prepared.graph.node}
    # tensors on the residual branch are not cuts: the skip connection bypasses them
    for inside in ("b1", "b1r", "b2"):
        assert inside not in cuts
    assert "block" in cuts and "stem" in cuts
    assert "logits" not in cuts  # an output is not a cut
    assert set(cuts) <= names


def test_cut_bytes_and_flops_share():
    cuts = {c.tensor: c for c in all_cuts(residual_net(), SHAPES)}
    assert cuts["block"].bytes == 8 * 16 * 16 * 4
    stem = 2 * 8 * 16 * 16 * 3 * 9
    branch = 2 * (2 * 8 * 16 * 16 * 8 * 9)
    assert 0 < cuts["stem"].head_flops_share < cuts["block"].head_flops_share < 1
    assert cuts["stem"].head_flops_share == pytest.approx(stem / (stem + branch + 2 * 4 * 8 * 8 * 8 * 9
                                                                  + 200), rel=0.02)


def test_split_tiny_model_chain_reproduces_output():
    for tensor in ("stem", "block"):
        assert_chain_reproduces(residual_net(), SHAPES, tensor)


def test_non_cut_and_unknown_tensor_are_named():
    with pytest.raises(SplitError, match="'b1r' does not separate.*'stem'"):
        split_model(residual_net(), SHAPES, "b1r")
    with pytest.raises(SplitError, match="no tensor 'nope'"):
        split_model(residual_net(), SHAPES, "nope")


def test_piece_names():
    assert split_piece_names("detector", "/layer3/Relu_output_0") == (
        "detector@/layer3/Relu_output_0:head", "detector@/layer3/Relu_output_0:tail")


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_zoo_candidate_cuts_and_chain(name):
    shapes = zoo_input_shapes(name)
    path = zoo_model_path(name)
    cuts = candidate_cuts(path, shapes, max_cuts=4)
    assert 1 <= len(cuts) <= 4 and all(isinstance(c, Cut) for c in cuts)
    shares = [c.head_flops_share for c in cuts]
    assert shares == sorted(shares) and all(0.05 <= s <= 0.95 for s in shares)
    input_bytes = 3 * 224 * 224 * 4
    assert all(c.bytes < input_bytes for c in cuts)  # smaller than sending the image
    assert_chain_reproduces(path, shapes, cuts[len(cuts) // 2].tensor)


def test_split_sources_are_profiled_as_pieces(tmp_path):
    path = tmp_path / "residual.onnx"
    onnx.save(residual_net(), str(path))
    source = PieceSource(piece="resnet", onnx_path=path, input_shapes=SHAPES)
    head, tail = split_sources(source, "block", tmp_path / "split")
    assert (head.piece, tail.piece) == split_piece_names("resnet", "block")
    assert tail.input_shapes == {"block": [1, 8, 16, 16]}
    again = split_sources(source, "block", tmp_path / "split")  # files reused
    assert again[0].onnx_path == head.onnx_path
    from profiles.measure import MeasureConfig

    fast = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5)
    report = profile_pieces([head, tail], [], runtimes=("onnxruntime",), config=fast)
    assert set(report.table["piece"]) == {head.piece, tail.piece} and not report.problems
