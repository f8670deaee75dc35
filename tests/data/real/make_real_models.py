"""Maintainer script: write the real-shaped model fixtures in this folder (not run by tests).

A three-model camera chain exported by torch.onnx (a detector on one full frame, then two crop
models that each take a fixed stack of six crops per call, dims [6, ...]), a model with a dynamic
leading dim, one with no batch dim at all, and a recurrent model with `If` and an LSTM whose
`rate` input must hold a real sample rate (random values make it fail). The recurrent one is
built with onnx.helper: torch's exporter needs scripting for data-dependent control flow. Random
weights, fixed seeds; every file is small.

    pip install torch==2.13.0 onnxscript   # CPU wheel; tests never need torch
    python tests/data/real/make_real_models.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 20240611


def _export(module, args, name: str, dynamic_batch: bool = False) -> None:
    import torch

    module.eval()
    names = [f"input{i}" for i in range(len(args))] if len(args) > 1 else ["input"]
    kwargs = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {names[0]: {0: "batch"}, "output": {0: "batch"}}
    torch.onnx.export(module, tuple(args), str(HERE / f"{name}.onnx"), input_names=names,
                      output_names=["output"], opset_version=17, dynamo=False, **kwargs)
    print(f"wrote {name}.onnx ({(HERE / f'{name}.onnx').stat().st_size:,} bytes)")


def torch_models() -> None:
    import torch
    from torch import nn

    torch.manual_seed(SEED)

    class Detector(nn.Module):  # one 96x96 frame -> 6 boxes (x, y, w, h) and scores
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
            self.head = nn.Linear(32, 6 * 5)

        def forward(self, x):
            return self.head(self.body(x).flatten(1)).reshape(-1, 6, 5)

    class CropNet(nn.Module):  # a stack of six 32x32 crops -> one vector per crop
        def __init__(self, out: int):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
            self.head = nn.Linear(32, out)

        def forward(self, x):
            return self.head(self.body(x).flatten(1))

    class Mlp(nn.Module):  # a feature vector with no batch dim at all
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

        def forward(self, x):
            return self.net(x)

    _export(Detector(), [torch.randn(1, 3, 96, 96)], "chain-detector")
    _export(CropNet(16), [torch.randn(6, 3, 32, 32)], "chain-embed6")
    _export(CropNet(8), [torch.randn(6, 3, 32, 32)], "chain-attr6")
    _export(CropNet(8), [torch.randn(2, 3, 32, 32)], "dyn-batch", dynamic_batch=True)
    _export(Mlp(), [torch.randn(64)], "no-batch")


def rnn_if_rate() -> None:
    """audio [1, 1600] and rate [1] (int64, Hz) -> frames of rate/100 samples -> LSTM -> If
    (the sign of the mean state picks a branch) -> embedding [1, 16]. With rate 0 or 1 the
    frame reshape fails, so the values of `rate` matter."""
    rng = np.random.default_rng(SEED)
    hidden, frame = 16, 160
    inits = [
        numpy_helper.from_array(np.array([100], np.int64), "hundred"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "one_minus_one"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, frame)).astype(np.float32) * 0.1, "W"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.1, "R"),
        numpy_helper.from_array(np.zeros((1, 8 * hidden), np.float32), "B"),
        numpy_helper.from_array(np.array([1, hidden], np.int64), "state_shape"),
    ]
    then_graph = helper.make_graph([helper.make_node("Relu", ["h2"], ["branch"])], "then", [],
                                   [helper.make_tensor_value_info("branch", TensorProto.FLOAT, [1, hidden])])
    else_graph = helper.make_graph([helper.make_node("Neg", ["h2"], ["branch"])], "else", [],
                                   [helper.make_tensor_value_info("branch", TensorProto.FLOAT, [1, hidden])])
    nodes = [
        helper.make_node("Div", ["rate", "hundred"], ["hop"]),
        helper.make_node("Concat", ["one_minus_one", "hop"], ["frames_shape"], axis=0),
        helper.make_node("Reshape", ["audio", "frames_shape"], ["frames"]),  # [1, T, hop]
        helper.make_node("Transpose", ["frames"], ["seq"], perm=[1, 0, 2]),  # [T, 1, hop]
        helper.make_node("LSTM", ["seq", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden),
        helper.make_node("Reshape", ["Y_h", "state_shape"], ["h2"]),
        helper.make_node("ReduceMean", ["h2"], ["mean"], keepdims=0),
        helper.make_node("Greater", ["mean", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["output"], then_branch=then_graph, else_branch=else_graph),
    ]
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    graph = helper.make_graph(
        nodes, "rnn_if_rate",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1600]),
         helper.make_tensor_value_info("rate", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="onnx.helper (hand-built: LSTM + If)")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(HERE / "rnn-if-rate.onnx"))
    audio = rng.uniform(-1, 1, (1, 1600)).astype(np.float32)
    np.savez(HERE / "rnn-if-rate.npz", audio=audio, rate=np.array([16000], np.int64))
    print("wrote rnn-if-rate.onnx and rnn-if-rate.npz")


if __name__ == "__main__":
    rnn_if_rate()
    torch_models()
