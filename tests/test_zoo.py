"""The model zoo: valid ONNX, runnable at any batch, reproducible, published sizes, cached once."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from profiles import zoo
from profiles.paths import CACHE_ENV

CLASSIFIERS = ("resnet18", "resnet50", "mobilenetv2")
# torchvision's parameter counts (the figures in its model docs)
PUBLISHED_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenetv2": 3_504_872}


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    return {name: zoo.build_zoo_model(name) for name in zoo.ZOO_MODELS}


@pytest.fixture(scope="module")
def serialized(models) -> dict[str, bytes]:
    return {name: model.SerializeToString() for name, model in models.items()}


@pytest.fixture(scope="module")
def sessions(serialized) -> dict[str, ort.InferenceSession]:
    return {
        name: ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        for name, data in serialized.items()
    }


def _expected_output_shape(name: str, batch: int) -> tuple[int, ...]:
    if name == "transformer-encoder":
        return (batch, zoo.SEQ_LEN, zoo.HIDDEN)
    return (batch, zoo.NUM_CLASSES)


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_zoo_names():
    assert set(zoo.ZOO_MODELS) >= {"resnet18", "resnet50", "mobilenetv2", "transformer-encoder"}


@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_passes_full_checker(models, name):
    onnx.checker.check_model(models[name], full_check=True)
    assert models[name].opset_import[0].version == zoo.OPSET


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_runs_under_onnxruntime(sessions, name, batch):
    feeds = zoo.zoo_random_inputs(name, batch=batch)
    (out,) = sessions[name].run(None, feeds)
    assert out.shape == _expected_output_shape(name, batch)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_batch_is_symbolic_and_default_shapes_match(models, name):
    graph = models[name].graph
    shapes = zoo.zoo_input_shapes(name)
    assert [i.name for i in graph.input] == list(shapes)
    for value_info in graph.input:
        dims = _dims(value_info)
        assert dims[0] == zoo.BATCH_SYMBOL
        assert [1, *dims[1:]] == shapes[value_info.name]
    assert _dims(graph.output[0]) == [zoo.BATCH_SYMBOL, *_expected_output_shape(name, 1)[1:]]


@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_build_is_byte_identical(serialized, name):
    assert zoo.build_zoo_model(name).SerializeToString() == serialized[name]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_parameter_count_matches_published(models, name):
    count = zoo.parameter_count(models[name])
    assert count == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_flattens_through_shape_subgraph(models, name):
    nodes = models[name].graph.node
    producer = {out: node for node in nodes for out in node.output}
    assert any(node.op_type == "Shape" for node in nodes)
    (reshape,) = [node for node in nodes if node.op_type == "Reshape"]
    assert producer[reshape.input[1]].op_type == "Concat"
    # Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])
    unsqueeze = producer[producer[reshape.input[1]].input[0]]
    gather = producer[unsqueeze.input[0]]
    assert (unsqueeze.op_type, gather.op_type) == ("Unsqueeze", "Gather")
    assert producer[gather.input[0]].op_type == "Shape"


def test_transformer_reshapes_use_computed_shapes(models):
    nodes = models["transformer-encoder"].graph.node
    producer = {out: node for node in nodes for out in node.output}
    reshapes = [node for node in nodes if node.op_type == "Reshape"]
    # per layer: split Q, K, V and merge the context
    assert len(reshapes) == 4 * zoo.NUM_LAYERS
    assert all(producer[node.input[1]].op_type == "Concat" for node in reshapes)
    ops = {node.op_type for node in nodes}
    assert {"LayerNormalization", "Erf", "Softmax", "Shape", "Gather"} <= ops


def test_mobilenetv2_has_relu6_and_depthwise(models):
    nodes = models["mobilenetv2"].graph.node
    assert sum(node.op_type == "Clip" for node in nodes) == 35
    groups = [
        attr.i for node in nodes if node.op_type == "Conv"
        for attr in node.attribute if attr.name == "group"
    ]
    assert sum(g > 1 for g in groups) == 17


def test_zoo_model_path_writes_once(tmp_path, serialized):
    path = zoo.zoo_model_path("mobilenetv2", tmp_path)
    assert path == tmp_path / "zoo" / "mobilenetv2.onnx"
    assert path.read_bytes() == serialized["mobilenetv2"]
    before = path.stat()
    again = zoo.zoo_model_path("mobilenetv2", tmp_path)
    after = again.stat()
    assert again == path
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_zoo_model_path_rewrites_an_edited_file(tmp_path, serialized):
    path = zoo.zoo_model_path("mobilenetv2", tmp_path)
    path.write_bytes(b"not a model")
    assert zoo.zoo_model_path("mobilenetv2", tmp_path).read_bytes() == serialized["mobilenetv2"]


def test_zoo_model_path_rewrites_for_a_new_generator(tmp_path, monkeypatch):
    path = zoo.zoo_model_path("mobilenetv2", tmp_path)
    before = path.stat()
    monkeypatch.setattr(zoo, "GENERATOR_VERSION", "test-next")
    zoo.zoo_model_path("mobilenetv2", tmp_path)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns)


def test_zoo_model_path_defaults_to_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert zoo.zoo_model_path("mobilenetv2") == tmp_path / "zoo" / "mobilenetv2.onnx"


def test_refs():
    assert zoo.is_zoo_ref("zoo:resnet18")
    assert not zoo.is_zoo_ref("models/resnet18.onnx")
    assert zoo.parse_zoo_ref("zoo:transformer-encoder") == "transformer-encoder"
    with pytest.raises(ValueError):
        zoo.parse_zoo_ref("resnet18")


@pytest.mark.parametrize("call", [
    lambda: zoo.build_zoo_model("vgg16"),
    lambda: zoo.parse_zoo_ref("zoo:vgg16"),
    lambda: zoo.zoo_input_shapes("vgg16"),
    lambda: zoo.zoo_model_path("vgg16"),
])
def test_unknown_name_lists_known_ones(call):
    with pytest.raises(KeyError) as excinfo:
        call()
    message = str(excinfo.value)
    assert "vgg16" in message
    assert all(name in message for name in zoo.ZOO_MODELS)
