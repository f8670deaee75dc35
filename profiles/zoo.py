"""Standard architectures as ONNX models, generated here (nothing downloaded, no torch).

The zoo gives the profiler and the tests real-sized graphs to work on: `resnet18`, `resnet50`,
`mobilenetv2` (ImageNet classifiers, NCHW float32 "input" [batch, 3, 224, 224] → "logits"
[batch, 1000]) and `transformer-encoder` (a small BERT-like encoder, int64 "input_ids"
[batch, 128] → "last_hidden_state" [batch, 128, 256] float32).

The graphs follow the published architectures layer for layer (torchvision's ResNet v1.5 and
MobileNetV2, BERT's post-LayerNorm encoder), at opset 17, and look like a `torch.onnx.export`
with dynamic axes: the batch dimension is the symbol "batch", BatchNormalization is left unfused,
the classifier flattens through Shape → Gather → Unsqueeze → Concat → Reshape (`x.view(x.size(0),
-1)`) and the attention heads split and merge through shapes computed the same way. Code that
imports them therefore has to fix dims and fold shape subgraphs, as it must for real exports.

Weights are deterministic random numbers (numpy `default_rng`, a fixed seed per model): He-style
scaling for convolutions, BERT's N(0, 0.02) for the encoder, BatchNormalization with plausible
running statistics, no exact zeros or ones (so no optimiser can drop an Add or a Mul that a trained
model would keep). Latency does not depend on weight values, only on shapes and operators, so these
models profile like the trained ones; their outputs mean nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from profiles.paths import atomic_write_bytes, atomic_write_text, cache_root

ZOO_MODELS: tuple[str, ...] = ("resnet18", "resnet50", "mobilenetv2", "transformer-encoder")
ZOO_PREFIX = "zoo:"

# Bump when the generated graphs change on purpose; the cache also keys on this file's source.
GENERATOR_VERSION = "1"
OPSET = 17
IR_VERSION = 8  # what torch.onnx writes at opset 17; every onnxruntime since 1.10 reads it
BATCH_SYMBOL = "batch"

IMAGE_SHAPE = (3, 224, 224)
NUM_CLASSES = 1000

# transformer-encoder (BERT-like, small)
VOCAB_SIZE = 8000
MAX_POSITIONS = 512
SEQ_LEN = 128
HIDDEN = 256
NUM_LAYERS = 4
NUM_HEADS = 4
FFN = 1024
LN_EPS = 1e-12
BN_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# names and references


def _known(name: str) -> str:
    if name not in ZOO_MODELS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ZOO_MODELS)}")
    return name


def is_zoo_ref(ref: str) -> bool:
    """True for a "zoo:<name>" model reference (the name itself is checked by `parse_zoo_ref`)."""
    return isinstance(ref, str) and ref.startswith(ZOO_PREFIX)


def parse_zoo_ref(ref: str) -> str:
    """"zoo:resnet18" → "resnet18"; KeyError (listing the known names) for an unknown name."""
    if not is_zoo_ref(ref):
        raise ValueError(f"not a zoo reference: {ref!r} (expected '{ZOO_PREFIX}<name>')")
    return _known(ref[len(ZOO_PREFIX):])


def zoo_input_shapes(name: str) -> dict[str, list[int]]:
    """Default input shapes at batch 1 (the graphs themselves have a symbolic batch)."""
    _known(name)
    if name == "transformer-encoder":
        return {"input_ids": [1, SEQ_LEN]}
    return {"input": [1, *IMAGE_SHAPE]}


def zoo_random_inputs(name: str, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds of the right dtype for `name` at `batch` (for tests and measurements)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for input_name, shape in zoo_input_shapes(name).items():
        shape = [batch, *shape[1:]]
        if input_name == "input_ids":
            feeds[input_name] = rng.integers(0, VOCAB_SIZE, size=shape, dtype=np.int64)
        else:
            feeds[input_name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds


def parameter_count(model: onnx.ModelProto) -> int:
    """Trainable parameters as torch counts them: float initializers, less BN running stats."""
    running_stats = {
        name
        for node in model.graph.node
        if node.op_type == "BatchNormalization"
        for name in node.input[3:5]
    }
    total = 0
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in running_stats:
            total += math.prod(init.dims)
    return total


# ---------------------------------------------------------------------------------------------
# graph builder


class _Builder:
    """Collects nodes and initializers; names nodes and tensors the way torch.onnx does."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._used: set[str] = set()

    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self._used:
            name, i = f"{base}_{i}", i + 1
        self._used.add(name)
        return name

    def param(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, self._unique(name)))
        return self.initializers[-1].name

    def op(self, op_type: str, inputs: Sequence[str], scope: str, output: str | None = None,
           **attrs) -> str:
        node_name = self._unique(f"{scope}/{op_type}")
        out = output or f"{node_name}_output_0"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out

    def const(self, scope: str, value: np.ndarray) -> str:
        return self.op("Constant", [], scope, value=numpy_helper.from_array(value))

    # random tensors (float32, drawn in build order so a build is reproducible)
    def normal(self, shape: Sequence[int], std: float, mean: float = 0.0) -> np.ndarray:
        x = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        return (x * np.float32(std) + np.float32(mean)).astype(np.float32)

    def uniform(self, shape: Sequence[int], low: float, high: float) -> np.ndarray:
        return self.rng.uniform(low, high, size=tuple(shape)).astype(np.float32)

    def model(self, graph_name: str, inputs: list[onnx.ValueInfoProto],
              outputs: list[onnx.ValueInfoProto], doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs,
                                  initializer=self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="placement-optimizer.zoo",
            producer_version=GENERATOR_VERSION,
            doc_string=doc,
        )
        return model


# ---------------------------------------------------------------------------------------------
# layers shared by the CNNs


def _conv(b: _Builder, x: str, scope: str, cin: int, cout: int, k: int, stride: int = 1,
          group: int = 1) -> str:
    """Conv without bias (torchvision's convs all feed a BatchNorm), He-normal (fan_in) weights."""
    fan_in = cin // group * k * k
    weight = b.param(f"{scope}.weight", b.normal((cout, cin // group, k, k), math.sqrt(2 / fan_in)))
    pad = (k - 1) // 2
    return b.op("Conv", [x, weight], "/" + scope, dilations=[1, 1], group=group,
                kernel_shape=[k, k], pads=[pad, pad, pad, pad], strides=[stride, stride])


def _bn(b: _Builder, x: str, scope: str, c: int, gamma: tuple[float, float] = (0.6, 1.2)) -> str:
    """Inference-mode BatchNorm with plausible statistics: the He init keeps conv outputs near
    unit variance, so running_var sits around 1 and the mean near 0."""
    inputs = [
        b.param(f"{scope}.weight", b.uniform((c,), *gamma)),
        b.param(f"{scope}.bias", b.normal((c,), 0.1)),
        b.param(f"{scope}.running_mean", b.normal((c,), 0.1)),
        b.param(f"{scope}.running_var", b.uniform((c,), 0.6, 1.6)),
    ]
    return b.op("BatchNormalization", [x, *inputs], "/" + scope, epsilon=BN_EPS, momentum=0.9)


def _relu(b: _Builder, x: str, scope: str) -> str:
    return b.op("Relu", [x], "/" + scope)


def _relu6(b: _Builder, x: str, scope: str) -> str:
    lo = b.const("/" + scope, np.array(0.0, dtype=np.float32))
    hi = b.const("/" + scope, np.array(6.0, dtype=np.float32))
    return b.op("Clip", [x, lo, hi], "/" + scope)


def _classifier(b: _Builder, x: str, scope: str, cin: int) -> str:
    """GlobalAveragePool, then `x.view(x.size(0), -1)` as torch exports it, then Linear → logits."""
    x = b.op("GlobalAveragePool", [x], "/avgpool")
    shape = b.op("Shape", [x], "/flatten")
    batch = b.op("Gather", [shape, b.const("/flatten", np.array(0, dtype=np.int64))], "/flatten",
                 axis=0)
    batch = b.op("Unsqueeze", [batch, b.const("/flatten", np.array([0], dtype=np.int64))],
                 "/flatten")
    new_shape = b.op("Concat", [batch, b.const("/flatten", np.array([-1], dtype=np.int64))],
                     "/flatten", axis=0)
    x = b.op("Reshape", [x, new_shape], "/flatten")
    bound = 1 / math.sqrt(cin)
    weight = b.param(f"{scope}.weight", b.uniform((NUM_CLASSES, cin), -bound, bound))
    bias = b.param(f"{scope}.bias", b.uniform((NUM_CLASSES,), -bound, bound))
    return b.op("Gemm", [x, weight, bias], "/" + scope, output="logits",
                alpha=1.0, beta=1.0, transB=1)


def _image_io() -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                           [BATCH_SYMBOL, *IMAGE_SHAPE])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                            [BATCH_SYMBOL, NUM_CLASSES])]
    return inputs, outputs


# ---------------------------------------------------------------------------------------------
# ResNet (He et al. 2015; torchvision v1.5: the stride sits on the bottleneck's 3x3 conv)


def _basic_block(b: _Builder, x: str, scope: str, cin: int, width: int, stride: int
                 ) -> tuple[str, int]:
    out = _conv(b, x, f"{scope}.conv1", cin, width, 3, stride)
    out = _relu(b, _bn(b, out, f"{scope}.bn1", width), f"{scope}.relu")
    out = _conv(b, out, f"{scope}.conv2", width, width, 3)
    out = _bn(b, out, f"{scope}.bn2", width, gamma=(0.2, 0.6))  # trained nets: small last gamma
    shortcut = x
    if stride != 1 or cin != width:
        shortcut = _conv(b, x, f"{scope}.downsample.0", cin, width, 1, stride)
        shortcut = _bn(b, shortcut, f"{scope}.downsample.1", width)
    out = b.op("Add", [out, shortcut], f"/{scope}")
    return _relu(b, out, f"{scope}.relu_1"), width


def _bottleneck(b: _Builder, x: str, scope: str, cin: int, width: int, stride: int
                ) -> tuple[str, int]:
    cout = width * 4
    out = _conv(b, x, f"{scope}.conv1", cin, width, 1)
    out = _relu(b, _bn(b, out, f"{scope}.bn1", width), f"{scope}.relu")
    out = _conv(b, out, f"{scope}.conv2", width, width, 3, stride)
    out = _relu(b, _bn(b, out, f"{scope}.bn2", width), f"{scope}.relu_1")
    out = _conv(b, out, f"{scope}.conv3", width, cout, 1)
    out = _bn(b, out, f"{scope}.bn3", cout, gamma=(0.2, 0.6))
    shortcut = x
    if stride != 1 or cin != cout:
        shortcut = _conv(b, x, f"{scope}.downsample.0", cin, cout, 1, stride)
        shortcut = _bn(b, shortcut, f"{scope}.downsample.1", cout)
    out = b.op("Add", [out, shortcut], f"/{scope}")
    return _relu(b, out, f"{scope}.relu_2"), cout


def _resnet(name: str, block: Callable[..., tuple[str, int]], layers: Sequence[int]
            ) -> onnx.ModelProto:
    b = _Builder(_seed(name))
    x = _conv(b, "input", "conv1", 3, 64, 7, stride=2)
    x = _relu(b, _bn(b, x, "bn1", 64), "relu")
    x = b.op("MaxPool", [x], "/maxpool", ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3],
             pads=[1, 1, 1, 1], strides=[2, 2])
    channels = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for i in range(blocks):
            stride = 2 if stage > 1 and i == 0 else 1
            x, channels = block(b, x, f"layer{stage}.{i}", channels, width, stride)
    _classifier(b, x, "fc", channels)
    inputs, outputs = _image_io()
    return b.model(name, inputs, outputs, f"{name} (zoo generator {GENERATOR_VERSION})")


# ---------------------------------------------------------------------------------------------
# MobileNetV2 (Sandler et al. 2018; torchvision layout, width 1.0)

# expansion t, output channels c, repeats n, first stride s
_MOBILENETV2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _conv_bn_relu6(b: _Builder, x: str, scope: str, cin: int, cout: int, k: int,
                   stride: int = 1, group: int = 1) -> str:
    x = _conv(b, x, f"{scope}.0", cin, cout, k, stride, group)
    return _relu6(b, _bn(b, x, f"{scope}.1", cout), f"{scope}.2")


def _inverted_residual(b: _Builder, x: str, scope: str, cin: int, cout: int, stride: int,
                       expand: int) -> str:
    hidden = cin * expand
    out, j = x, 0
    if expand != 1:  # pointwise expansion
        out = _conv_bn_relu6(b, out, f"{scope}.conv.{j}", cin, hidden, 1)
        j += 1
    # depthwise 3x3: one group per channel
    out = _conv_bn_relu6(b, out, f"{scope}.conv.{j}", hidden, hidden, 3, stride, group=hidden)
    # pointwise linear projection (no activation)
    out = _conv(b, out, f"{scope}.conv.{j + 1}", hidden, cout, 1)
    out = _bn(b, out, f"{scope}.conv.{j + 2}", cout, gamma=(0.2, 0.6))
    if stride == 1 and cin == cout:
        out = b.op("Add", [x, out], f"/{scope}")
    return out


def _mobilenetv2(name: str) -> onnx.ModelProto:
    b = _Builder(_seed(name))
    x = _conv_bn_relu6(b, "input", "features.0", 3, 32, 3, stride=2)
    channels, index = 32, 1
    for expand, cout, repeats, first_stride in _MOBILENETV2_SETTINGS:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            x = _inverted_residual(b, x, f"features.{index}", channels, cout, stride, expand)
            channels, index = cout, index + 1
    x = _conv_bn_relu6(b, x, f"features.{index}", channels, 1280, 1)
    _classifier(b, x, "classifier.1", 1280)  # classifier.0 is Dropout: gone at inference
    inputs, outputs = _image_io()
    return b.model(name, inputs, outputs, f"{name} (zoo generator {GENERATOR_VERSION})")


# ---------------------------------------------------------------------------------------------
# transformer-encoder (BERT-like: embeddings + LayerNorm, post-LN layers, Erf GELU)


def _bert_normal(b: _Builder, shape: Sequence[int]) -> np.ndarray:
    return b.normal(shape, 0.02)


def _linear(b: _Builder, x: str, scope: str, cin: int, cout: int) -> str:
    """torch exports Linear on a 3-D input as MatMul with the transposed weight, then Add."""
    weight = b.param(f"{scope}.weight", _bert_normal(b, (cin, cout)))
    bias = b.param(f"{scope}.bias", _bert_normal(b, (cout,)))
    return b.op("Add", [b.op("MatMul", [x, weight], "/" + scope), bias], "/" + scope)


def _layer_norm(b: _Builder, x: str, scope: str, output: str | None = None) -> str:
    scale = b.param(f"{scope}.weight", b.normal((HIDDEN,), 0.02, mean=1.0))
    bias = b.param(f"{scope}.bias", _bert_normal(b, (HIDDEN,)))
    return b.op("LayerNormalization", [x, scale, bias], "/" + scope, output=output,
                axis=-1, epsilon=LN_EPS)


def _dims(b: _Builder, x: str, scope: str, axes: Sequence[int]) -> list[str]:
    """`x.size(i)` for each axis as torch exports it: Shape → Gather → Unsqueeze (1-D int64)."""
    shape = b.op("Shape", [x], scope)
    dims = []
    for axis in axes:
        dim = b.op("Gather", [shape, b.const(scope, np.array(axis, dtype=np.int64))], scope,
                   axis=0)
        dims.append(b.op("Unsqueeze", [dim, b.const(scope, np.array([0], dtype=np.int64))],
                         scope))
    return dims


def _reshape_computed(b: _Builder, x: str, scope: str, like: str, tail: Sequence[int]) -> str:
    """Reshape x to [like.size(0), like.size(1), *tail] with the shape computed in the graph."""
    dims = _dims(b, like, scope, (0, 1))
    shape = b.op("Concat", [*dims, b.const(scope, np.array(tail, dtype=np.int64))], scope, axis=0)
    return b.op("Reshape", [x, shape], scope)


def _gelu(b: _Builder, x: str, scope: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), in the op order torch exports."""
    s = "/" + scope
    y = b.op("Div", [x, b.const(s, np.array(math.sqrt(2.0), dtype=np.float32))], s)
    y = b.op("Erf", [y], s)
    y = b.op("Add", [y, b.const(s, np.array(1.0, dtype=np.float32))], s)
    y = b.op("Mul", [x, y], s)
    return b.op("Mul", [y, b.const(s, np.array(0.5, dtype=np.float32))], s)


def _encoder_layer(b: _Builder, x: str, scope: str, output: str | None) -> str:
    head_dim = HIDDEN // NUM_HEADS
    att = f"{scope}.attention.self"
    # project, split heads: [B, S, H] → [B, S, heads, d] → [B, heads, S, d] (K: [B, heads, d, S])
    heads = {}
    for proj, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
        y = _linear(b, x, f"{att}.{proj}", HIDDEN, HIDDEN)
        y = _reshape_computed(b, y, f"/{att}.{proj}", y, (NUM_HEADS, head_dim))
        heads[proj] = b.op("Transpose", [y], f"/{att}.{proj}", perm=perm)
    scores = b.op("MatMul", [heads["query"], heads["key"]], f"/{att}")
    scale = b.const(f"/{att}", np.array(math.sqrt(head_dim), dtype=np.float32))
    probs = b.op("Softmax", [b.op("Div", [scores, scale], f"/{att}")], f"/{att}", axis=-1)
    context = b.op("MatMul", [probs, heads["value"]], f"/{att}")
    # merge heads: [B, heads, S, d] → [B, S, heads, d] → [B, S, H]
    context = b.op("Transpose", [context], f"/{att}", perm=[0, 2, 1, 3])
    context = _reshape_computed(b, context, f"/{att}", context, (HIDDEN,))
    y = _linear(b, context, f"{scope}.attention.output.dense", HIDDEN, HIDDEN)
    y = b.op("Add", [y, x], f"/{scope}.attention.output")
    x = _layer_norm(b, y, f"{scope}.attention.output.LayerNorm")
    # feed-forward
    y = _linear(b, x, f"{scope}.intermediate.dense", HIDDEN, FFN)
    y = _gelu(b, y, f"{scope}.intermediate.intermediate_act_fn")
    y = _linear(b, y, f"{scope}.output.dense", FFN, HIDDEN)
    y = b.op("Add", [y, x], f"/{scope}.output")
    return _layer_norm(b, y, f"{scope}.output.LayerNorm", output=output)


def _transformer_encoder(name: str) -> onnx.ModelProto:
    b = _Builder(_seed(name))
    words = b.param("embeddings.word_embeddings.weight", _bert_normal(b, (VOCAB_SIZE, HIDDEN)))
    positions = b.param("embeddings.position_embeddings.weight",
                        _bert_normal(b, (MAX_POSITIONS, HIDDEN)))
    position_ids = b.param("embeddings.position_ids",
                           np.arange(SEQ_LEN, dtype=np.int64).reshape(1, SEQ_LEN))
    x = b.op("Gather", [words, "input_ids"], "/embeddings/word_embeddings", axis=0)
    pos = b.op("Gather", [positions, position_ids], "/embeddings/position_embeddings", axis=0)
    x = b.op("Add", [x, pos], "/embeddings")
    x = _layer_norm(b, x, "embeddings.LayerNorm")
    for layer in range(NUM_LAYERS):
        last = layer == NUM_LAYERS - 1
        x = _encoder_layer(b, x, f"encoder.layer.{layer}", "last_hidden_state" if last else None)
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                           [BATCH_SYMBOL, SEQ_LEN])]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                            [BATCH_SYMBOL, SEQ_LEN, HIDDEN])]
    doc = (f"{name}: {NUM_LAYERS} layers, hidden {HIDDEN}, {NUM_HEADS} heads, FFN {FFN}, "
           f"vocab {VOCAB_SIZE} (zoo generator {GENERATOR_VERSION})")
    return b.model(name, inputs, outputs, doc)


# ---------------------------------------------------------------------------------------------
# public entry points


def _seed(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


_BUILDERS: dict[str, Callable[[], onnx.ModelProto]] = {
    "resnet18": lambda: _resnet("resnet18", _basic_block, (2, 2, 2, 2)),
    "resnet50": lambda: _resnet("resnet50", _bottleneck, (3, 4, 6, 3)),
    "mobilenetv2": lambda: _mobilenetv2("mobilenetv2"),
    "transformer-encoder": lambda: _transformer_encoder("transformer-encoder"),
}


def build_zoo_model(name: str) -> onnx.ModelProto:
    """The model `name` as an in-memory ModelProto; the same bytes on every call."""
    return _BUILDERS[_known(name)]()


def _fingerprint() -> str:
    """What the generated bytes depend on: this file's source and the libraries writing them."""
    h = hashlib.sha256()
    for part in (GENERATOR_VERSION, onnx.__version__, np.__version__):
        h.update(part.encode("utf-8") + b"\0")
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_current(path: Path, meta_path: Path, fingerprint: str) -> bool:
    """The file exists, came from this generator and still has the bytes it was written with."""
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        if meta.get("generator") != fingerprint or path.stat().st_size != meta.get("bytes"):
            return False
        return _sha256_file(path) == meta.get("sha256")
    except (OSError, ValueError, AttributeError):
        return False


def zoo_model_path(name: str, directory: Path | None = None) -> Path:
    """`<directory>/zoo/<name>.onnx`, generated on first use and reused while it is current.

    A sidecar `<name>.onnx.json` records the generator fingerprint and the file's sha256; a
    changed generator, a changed library version or an edited file makes the next call rewrite.
    Writes are atomic and under a file lock, so concurrent callers build the model once.
    """
    from filelock import FileLock

    _known(name)
    root = Path(directory) if directory is not None else cache_root()
    path = root / "zoo" / f"{name}.onnx"
    meta_path = path.with_name(f"{path.name}.json")
    fingerprint = _fingerprint()
    if _is_current(path, meta_path, fingerprint):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        if _is_current(path, meta_path, fingerprint):  # another process wrote it meanwhile
            return path
        data = build_zoo_model(name).SerializeToString()
        atomic_write_bytes(path, data)
        meta = {"name": name, "generator": fingerprint, "generator_version": GENERATOR_VERSION,
                "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path
