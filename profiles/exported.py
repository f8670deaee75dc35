"""Real `torch.onnx.export` models, for checking that preparation, both runtimes and the
estimator cope with what an exporter really writes (not only with the hand-built zoo).

Seven small networks built from `torch.nn` layers (no torchvision), exported with a symbolic
batch dimension (`dynamic_axes`) at different opsets:

| name | network | opset | exporter | input |
|---|---|---|---|---|
| `torch-resnet18` | ResNet-18 (BasicBlock, 2-2-2-2), `x.flatten(1)` classifier | 17 | TorchScript | `input` [batch, 3, 224, 224] |
| `torch-mobilenet` | MobileNetV2-style inverted residuals, ReLU6, width 0.5 | 11 | TorchScript | `input` [batch, 3, 224, 224] |
| `torch-transformer` | `nn.TransformerEncoder` (4 layers, d=256, 4 heads) over `nn.Embedding` | 14 | TorchScript | `input_ids` [batch, 128] int64 |
| `torch-vit` | ViT-Tiny-like, half depth: 16x16 patches, d=192, 3 heads, 6 pre-norm layers | 17 | TorchScript | `input` [batch, 3, 224, 224] |
| `torch-mixer` | MLP-Mixer-like: 16x16 patches, d=256, 4 blocks (token MLP 128, channel MLP 1024) | 20 | TorchScript | `input` [batch, 3, 224, 224] |
| `torch-gru` | 2-layer `nn.GRU` (hidden 256) over 64 features, last step → linear | 13 | TorchScript | `input` [batch, 50, 64] |
| `torch-convnet-o21` | a small ConvNet with LayerNorm, GELU (`approximate="tanh"`) | 21 | dynamo (needs onnxscript) | `input` [batch, 3, 64, 64] |

(The transformer needs opset 14: attention exports through `scaled_dot_product_attention`.)
The TorchScript exporter stops at opset 20; opset 21 needs the dynamo exporter, which needs the
`onnxscript` package: without it that model is skipped (`available_models()` says which exist).
TVM 0.27's Relax ONNX importer has no GRU converter, so `torch-gru` is the real exported model
that exercises "TVM cannot import this op; ONNX Runtime still measures it".

Weights are torch's default initialisation under a fixed seed; the models compute nothing
meaningful, but latency depends on shapes and operators only. Files are written atomically to
`export_dir()` (`cache_root()/exported` by default), keyed by torch version and this file's
source, so a second call reuses them. torch is imported only inside functions; callers that may
run without torch catch `ExportUnavailableError`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from profiles.paths import atomic_write_bytes, atomic_write_text, cache_root

logger = logging.getLogger(__name__)

SEED = 0


class ExportUnavailableError(RuntimeError):
    """torch (or, for opset 21, onnxscript) is not installed, so the model cannot be exported."""


@dataclass(frozen=True)
class ExportedModel:
    """What `export_model` wrote: the file, the shapes to profile at, how it was exported."""

    name: str
    path: Path
    input_shapes: dict[str, list[int]]
    opset: int
    exporter: str
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Recipe:
    build: Callable[[], object]  # () -> torch.nn.Module
    example: Callable[[int], tuple]  # batch -> example inputs
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_shapes: dict[str, list[int]]
    opset: int
    dynamic_axes: dict[str, dict[int, str]]
    exporter: str = "torchscript"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def dynamo_available() -> bool:
    return torch_available() and importlib.util.find_spec("onnxscript") is not None


# --- the networks (torch imported lazily) -----------------------------------------------------

def _resnet18():
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.down is None else self.down(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet18(nn.Module):
        def __init__(self, classes: int = 1000):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
            layers, cin = [], 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            x = self.pool(self.layers(self.stem(x)))
            return self.fc(x.flatten(1))

    return ResNet18()


def _mobilenet():
    from torch import nn

    def conv_bn(cin, cout, k, stride, groups=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    class MobileNet(nn.Module):
        # MobileNetV2's (expand, channels, repeats, stride) table at width 0.5
        SETTINGS = ((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 3, 2), (6, 32, 4, 2), (6, 48, 3, 1),
                    (6, 80, 3, 2), (6, 160, 1, 1))

        def __init__(self, classes: int = 1000):
            super().__init__()
            layers, cin = [conv_bn(3, 16, 3, 2)], 16
            for expand, cout, repeats, stride in self.SETTINGS:
                for i in range(repeats):
                    layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                    cin = cout
            layers.append(conv_bn(cin, 640, 1, 1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(640, classes))

        def forward(self, x):
            x = self.features(x).mean([2, 3])
            return self.classifier(x)

    return MobileNet()


def _transformer():
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, vocab=8000, seq=128, d=256, heads=4, layers=4, ffn=1024):
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            self.pos = nn.Parameter(torch.randn(1, seq, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True,
                                               activation="gelu")
            # the fused fast path would export as an op ONNX does not have; keep the math path
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

        def forward(self, input_ids):
            return self.encoder(self.embed(input_ids) + self.pos)

    return Encoder()


def _gru():
    from torch import nn

    class GruClassifier(nn.Module):
        def __init__(self, features=64, hidden=256, classes=10):
            super().__init__()
            self.gru = nn.GRU(features, hidden, num_layers=2, batch_first=True)
            self.head = nn.Linear(hidden, classes)

        def forward(self, x):
            out, _ = self.gru(x)
            return self.head(out[:, -1])

    return GruClassifier()


def _convnet_o21():
    from torch import nn

    class ConvNet(nn.Module):
        def __init__(self, classes=100):
            super().__init__()
            self.convs = nn.Sequential(
                nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(approximate="tanh"),
                nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(approximate="tanh"),
                nn.Conv2d(64, 128, 3, 2, 1), nn.GELU(approximate="tanh"))
            self.norm = nn.LayerNorm(128)
            self.fc = nn.Linear(128, classes)

        def forward(self, x):
            x = self.convs(x).mean([2, 3])
            return self.fc(self.norm(x))

    return ConvNet()


def _vit():
    import torch
    from torch import nn

    class ViT(nn.Module):
        """ViT-Tiny-like at half depth: 16x16 patches, d=192, 3 heads, pre-norm encoder."""

        def __init__(self, d=192, heads=3, layers=6, classes=1000):
            super().__init__()
            self.patch = nn.Conv2d(3, d, 16, 16)
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, 197, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True,
                                               activation="gelu", norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, classes)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            return self.head(self.norm(self.encoder(x))[:, 0])

    return ViT()


def _mixer():
    from torch import nn

    class MixerBlock(nn.Module):
        def __init__(self, tokens, d, token_hidden, channel_hidden):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.tokens = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(),
                                        nn.Linear(token_hidden, tokens))
            self.channels = nn.Sequential(nn.Linear(d, channel_hidden), nn.GELU(),
                                          nn.Linear(channel_hidden, d))

        def forward(self, x):
            x = x + self.tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
            return x + self.channels(self.norm2(x))

    class Mixer(nn.Module):
        """MLP-Mixer-like: 16x16 patches (196 tokens), d=256, 4 blocks."""

        def __init__(self, d=256, blocks=4, classes=1000):
            super().__init__()
            self.patch = nn.Conv2d(3, d, 16, 16)
            self.blocks = nn.Sequential(*[MixerBlock(196, d, 128, 1024) for _ in range(blocks)])
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, classes)

        def forward(self, x):
            x = self.blocks(self.patch(x).flatten(2).transpose(1, 2))
            return self.head(self.norm(x).mean(1))

    return Mixer()


def _image(batch, size=224):
    import torch

    return (torch.randn(batch, 3, size, size),)


def _ids(batch):
    import torch

    return (torch.randint(0, 8000, (batch, 128), dtype=torch.int64),)


def _sequence(batch):
    import torch

    return (torch.randn(batch, 50, 64),)


_BATCH = {0: "batch"}

RECIPES: dict[str, _Recipe] = {
    "torch-resnet18": _Recipe(_resnet18, _image, ("input",), ("logits",),
                              {"input": [1, 3, 224, 224]}, 17,
                              {"input": _BATCH, "logits": _BATCH}),
    "torch-mobilenet": _Recipe(_mobilenet, _image, ("input",), ("logits",),
                               {"input": [1, 3, 224, 224]}, 11,
                               {"input": _BATCH, "logits": _BATCH}),
    "torch-transformer": _Recipe(_transformer, _ids, ("input_ids",), ("hidden",),
                                 {"input_ids": [1, 128]}, 14,
                                 {"input_ids": _BATCH, "hidden": _BATCH}),
    "torch-vit": _Recipe(_vit, _image, ("input",), ("logits",), {"input": [1, 3, 224, 224]}, 17,
                         {"input": _BATCH, "logits": _BATCH}),
    "torch-mixer": _Recipe(_mixer, _image, ("input",), ("logits",), {"input": [1, 3, 224, 224]},
                           20, {"input": _BATCH, "logits": _BATCH}),
    "torch-gru": _Recipe(_gru, _sequence, ("input",), ("logits",), {"input": [1, 50, 64]}, 13,
                         {"input": _BATCH, "logits": _BATCH}),
    "torch-convnet-o21": _Recipe(_convnet_o21, lambda b: _image(b, 64), ("input",), ("logits",),
                                 {"input": [1, 3, 64, 64]}, 21,
                                 {"input": _BATCH, "logits": _BATCH}, exporter="dynamo"),
}
EXPORTED_MODELS: tuple[str, ...] = tuple(RECIPES)


def available_models() -> tuple[str, ...]:
    """The models this environment can export (none without torch; opset 21 needs onnxscript)."""
    if not torch_available():
        return ()
    return tuple(n for n, r in RECIPES.items() if r.exporter != "dynamo" or dynamo_available())


def export_dir() -> Path:
    return cache_root() / "exported"


def _fingerprint(name: str) -> str:
    from importlib.metadata import version

    source = Path(__file__).read_bytes()
    fields = {"name": name, "torch": version("torch"), "source": hashlib.sha256(source).hexdigest()}
    if RECIPES[name].exporter == "dynamo":
        fields["onnxscript"] = version("onnxscript")
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def export_model(name: str, directory: Path | None = None) -> ExportedModel:
    """Export one model (or reuse the file a previous call wrote) and describe it."""
    if name not in RECIPES:
        raise KeyError(f"unknown exported model {name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if not torch_available():
        raise ExportUnavailableError(f"{name}: torch is not installed (pip install torch)")
    if recipe.exporter == "dynamo" and not dynamo_available():
        raise ExportUnavailableError(
            f"{name}: opset {recipe.opset} needs torch's dynamo exporter, which needs onnxscript")
    directory = Path(directory) if directory is not None else export_dir()
    path = directory / f"{name}.onnx"
    meta = directory / f"{name}.json"
    fingerprint = _fingerprint(name)
    described = ExportedModel(name, path, {k: list(v) for k, v in recipe.input_shapes.items()},
                              recipe.opset, recipe.exporter, recipe.dynamic_axes)
    if path.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()).get("fingerprint") == fingerprint:
                return described
        except ValueError:
            pass
    atomic_write_bytes(path, _export_bytes(recipe))
    atomic_write_text(meta, json.dumps({"fingerprint": fingerprint, "opset": recipe.opset,
                                        "exporter": recipe.exporter}) + "\n")
    return described


def export_models(names=None, directory: Path | None = None) -> list[ExportedModel]:
    """Export every available model (or those named)."""
    return [export_model(n, directory) for n in (names or available_models())]


def _export_bytes(recipe: _Recipe) -> bytes:
    import warnings

    import torch

    torch.manual_seed(SEED)
    module = recipe.build().eval()
    example = recipe.example(2)
    with tempfile.TemporaryDirectory(prefix="torch-export-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Path(tmp) / "model.onnx"
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel has no ONNX form
        onnx_logger = logging.getLogger("torch.onnx")  # "torchvision is not installed", ...
        level = onnx_logger.level
        onnx_logger.setLevel(logging.ERROR)
        try:
            _run_export(torch, module, example, recipe, out)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
            onnx_logger.setLevel(level)
        return out.read_bytes()


def _run_export(torch, module, example, recipe: _Recipe, out: Path) -> None:
    names = dict(input_names=list(recipe.input_names), output_names=list(recipe.output_names))
    with torch.no_grad():
        if recipe.exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(module, example, str(out), dynamo=True, opset_version=recipe.opset,
                              dynamic_shapes=({0: batch},), external_data=False, verbose=False,
                              **names)
        else:
            torch.onnx.export(module, example, str(out), dynamo=False, opset_version=recipe.opset,
                              dynamic_axes={k: dict(v) for k, v in recipe.dynamic_axes.items()},
                              **names)


def torch_reference(name: str, feeds: dict) -> list:
    """The torch module's own outputs on `feeds` (numpy arrays), for checking an export."""
    import numpy as np
    import torch

    recipe = RECIPES[name]
    torch.manual_seed(SEED)
    module = recipe.build().eval()
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.asarray(feeds[n])) for n in recipe.input_names])
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in outs]
