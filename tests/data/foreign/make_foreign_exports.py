"""Maintainer script: write the tf2onnx and paddle2onnx fixtures in this folder (not run by tests).

The project venv has neither TensorFlow nor PaddlePaddle, so real exports from those frameworks
are committed here as small files. Every network is built from layers with random weights and
fixed seeds (no downloaded weights). Each `<name>.onnx` comes with `<name>.npz` holding a batch-1
input (`input`) and the framework's own output on it (`output`), so the tests can check what the
project's preparation makes of the export against the framework itself.

Run in a separate venv (see README.md):

    python3.11 -m venv /tmp/exporters && . /tmp/exporters/bin/activate
    pip install tensorflow-cpu tf2onnx onnx
    pip install paddlepaddle paddle2onnx
    python tests/data/foreign/make_foreign_exports.py            # all fixtures
    python tests/data/foreign/make_foreign_exports.py tf paddle  # one framework only
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20240611
MAX_BYTES = 1_500_000


def _write_reference(name: str, x: np.ndarray, y: np.ndarray) -> None:
    np.savez_compressed(HERE / f"{name}.npz", input=x.astype(np.float32), output=y.astype(np.float32))


def _check_file(name: str, opset: int) -> dict:
    import onnx

    path = HERE / f"{name}.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path}: {size} bytes, over {MAX_BYTES}"
    got = {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")}
    assert got == {opset}, f"{path}: opset {got}, wanted {opset}"
    inits = {i.name for i in model.graph.initializer}
    [inp] = [i for i in model.graph.input if i.name not in inits]
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"{name}: opset {opset}, {size} bytes, input {inp.name!r} {dims}, "
          f"output {[o.name for o in model.graph.output]}, ops {ops}")
    return {"file": path.name, "opset": opset, "bytes": size, "input": inp.name, "dims": dims,
            "outputs": [o.name for o in model.graph.output], "ops": ops}


# --- TensorFlow / Keras via tf2onnx -----------------------------------------------------------

def _keras_cnn(keras):
    """NHWC CNN: Conv/BN/ReLU, max and average pooling, a Keras Reshape, Flatten, Dense."""
    layers = keras.layers
    inputs = keras.Input(shape=(32, 32, 3), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(2)(x)                                   # 16x16x16
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.AveragePooling2D(2)(x)                               # 8x8x32
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)  # 4x4x32
    x = layers.Reshape((16, 32))(x)                                 # tokens x channels
    x = layers.Dense(24, activation="relu")(x)                      # per-token Dense (MatMul on rank 3)
    x = layers.Flatten()(x)                                         # 384
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="tf_cnn")


def _keras_mobile(keras):
    """MobileNet-ish NHWC block stack: depthwise/separable convs, ReLU6, residual add, a
    squeeze-excite gate (GlobalAveragePooling -> Reshape -> Dense -> Multiply), LayerNorm, GELU."""
    layers = keras.layers

    def block(x, channels, stride):
        shortcut = x
        y = layers.Conv2D(channels * 2, 1, use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU(6.0)(y)
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU(6.0)(y)
        se = layers.GlobalAveragePooling2D()(y)
        se = layers.Reshape((1, 1, channels * 2))(se)
        se = layers.Dense(max(channels // 2, 4), activation="relu")(se)
        se = layers.Dense(channels * 2, activation="sigmoid")(se)
        y = layers.Multiply()([y, se])
        y = layers.Conv2D(channels, 1, use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        if stride == 1 and shortcut.shape[-1] == channels:
            y = layers.Add()([shortcut, y])
        return y

    inputs = keras.Input(shape=(48, 48, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)  # 24x24
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = block(x, 16, 1)
    x = block(x, 24, 2)                                             # 12x12
    x = block(x, 24, 1)
    x = layers.SeparableConv2D(32, 3, strides=2, padding="same")(x)  # 6x6
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.LayerNormalization()(x)
    x = layers.Dense(64)(x)
    x = layers.Activation(lambda t: keras.activations.gelu(t, approximate=True))(x)  # exact GELU: Erfc, no ONNX op
    outputs = layers.Dense(20, name="logits")(x)
    return keras.Model(inputs, outputs, name="tf_mobile")


def _randomize_keras_bn(model, rng) -> None:
    """Give every BatchNormalization non-trivial statistics and every bias non-zero values
    (fresh ones are identities and zeros, which tf2onnx folds away)."""
    for layer in model.layers:
        for w in layer.weights:
            if w.path.endswith("bias"):
                w.assign(rng.uniform(-0.1, 0.1, w.shape).astype(np.float32))
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                rng.uniform(-0.2, 0.2, beta.shape).astype(np.float32),
                rng.uniform(-0.2, 0.2, mean.shape).astype(np.float32),
                rng.uniform(0.5, 1.5, var.shape).astype(np.float32),
            ])


def export_tf() -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    keras = tf.keras
    recipes = [("tf-cnn-o13", _keras_cnn, 13, (32, 32, 3)),
               ("tf-mobile-o17", _keras_mobile, 17, (48, 48, 3))]
    written = {}
    for name, build, opset, hwc in recipes:
        keras.utils.set_random_seed(SEED)
        rng = np.random.default_rng(SEED)
        model = build(keras)
        _randomize_keras_bn(model, rng)
        input_name = model.inputs[0].name
        spec = (tf.TensorSpec((None, *hwc), tf.float32, name=input_name),)

        @tf.function(input_signature=spec)
        def serve(x, model=model):
            return {"output": model(x, training=False)}

        # from_function over an inference-mode call (training=False), so the graph output is
        # named "output"; tf2onnx.convert.from_keras writes the same ops.
        tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset,
                                      output_path=str(HERE / f"{name}.onnx"))
        x = rng.uniform(-1, 1, (1, *hwc)).astype(np.float32)
        _write_reference(name, x, model(x, training=False).numpy())
        info = _check_file(name, opset)
        info.update(framework=f"tensorflow-cpu {version('tensorflow-cpu')}, keras {version('keras')}, "
                              f"tf2onnx {version('tf2onnx')}, onnx {version('onnx')}")
        written[name] = info
    return written


# --- PaddlePaddle via paddle2onnx -------------------------------------------------------------

def _paddle_cnn(paddle):
    nn = paddle.nn

    class PaddleCNN(nn.Layer):
        """NCHW CNN: Conv/BN/ReLU, max pooling, a residual block, adaptive average pooling,
        `paddle.flatten`, Linear."""

        def __init__(self, classes=10):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2D(3, 16, 3, padding=1, bias_attr=False),
                                      nn.BatchNorm2D(16), nn.ReLU(), nn.MaxPool2D(2))
            self.res = nn.Sequential(nn.Conv2D(16, 16, 3, padding=1, bias_attr=False),
                                     nn.BatchNorm2D(16), nn.ReLU(),
                                     nn.Conv2D(16, 16, 3, padding=1, bias_attr=False),
                                     nn.BatchNorm2D(16))
            self.down = nn.Sequential(nn.Conv2D(16, 32, 3, stride=2, padding=1),
                                      nn.BatchNorm2D(32), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2D(2)
            self.fc1 = nn.Linear(32 * 2 * 2, 64)
            self.fc2 = nn.Linear(64, classes)

        def forward(self, x):
            x = self.stem(x)
            x = nn.functional.relu(x + self.res(x))
            x = self.pool(self.down(x))
            x = paddle.flatten(x, start_axis=1)
            return nn.functional.softmax(self.fc2(nn.functional.relu(self.fc1(x))), axis=-1)

    return PaddleCNN()


def _paddle_mlp(paddle):
    nn = paddle.nn

    class PaddleMLP(nn.Layer):
        """Token MLP over [batch, 16, 32]: LayerNorm, Linear/GELU, residual, reshape to
        [batch, 512] (`paddle.reshape` with a -1 batch), Linear head."""

        def __init__(self, tokens=16, d=32, classes=8):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            self.head = nn.Linear(tokens * d, classes)
            self.tokens, self.d = tokens, d

        def forward(self, x):
            x = x + self.mlp(self.norm(x))
            x = paddle.reshape(x, [-1, self.tokens * self.d])
            return self.head(nn.functional.relu(x))

    return PaddleMLP()


def _randomize_paddle_bn(model, paddle, rng) -> None:
    for layer in model.sublayers():
        if type(layer).__name__ == "BatchNorm2D":
            c = layer._mean.shape[0]
            layer.weight.set_value(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.bias.set_value(rng.uniform(-0.2, 0.2, c).astype(np.float32))
            layer._mean.set_value(rng.uniform(-0.2, 0.2, c).astype(np.float32))
            layer._variance.set_value(rng.uniform(0.5, 1.5, c).astype(np.float32))


def export_paddle() -> dict:
    import paddle

    recipes = [("paddle-cnn-o11", _paddle_cnn, 11, [3, 32, 32], "x"),
               ("paddle-mlp-o13", _paddle_mlp, 13, [16, 32], "tokens")]
    written = {}
    for name, build, opset, dims, input_name in recipes:
        paddle.seed(SEED)
        rng = np.random.default_rng(SEED)
        model = build(paddle)
        _randomize_paddle_bn(model, paddle, rng)
        model.eval()
        spec = [paddle.static.InputSpec([None, *dims], "float32", input_name)]
        with tempfile.TemporaryDirectory(prefix="paddle-export-") as tmp:
            prefix = Path(tmp) / name
            paddle.onnx.export(model, str(prefix), input_spec=spec, opset_version=opset)
            (HERE / f"{name}.onnx").write_bytes(prefix.with_suffix(".onnx").read_bytes())
        x = rng.uniform(-1, 1, (1, *dims)).astype(np.float32)
        _write_reference(name, x, model(paddle.to_tensor(x)).numpy())
        info = _check_file(name, opset)
        info.update(framework=f"paddlepaddle {version('paddlepaddle')}, paddle2onnx "
                              f"{version('paddle2onnx')}, onnx {version('onnx')}")
        written[name] = info
    return written


def main(argv: list[str]) -> None:
    exporters = {"tf": export_tf, "paddle": export_paddle}
    unknown = set(argv) - set(exporters)
    if unknown:
        sys.exit(f"unknown framework(s) {sorted(unknown)}; use: {' '.join(exporters)}")
    frameworks = argv or list(exporters)
    if len(frameworks) == 1:
        print(json.dumps(exporters[frameworks[0]](), indent=1))
        return
    # One child process per framework: importing paddle after TensorFlow in one process
    # segfaults (tensorflow-cpu 2.21 + paddlepaddle 3.3.1).
    for framework in frameworks:
        subprocess.run([sys.executable, __file__, framework], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
