"""Model splitting: cut a model at one tensor into a head and a tail that run in different places.

A tensor is a **cut** when every path from the graph's inputs to its outputs passes through it:
remove it, and nothing computed from the inputs reaches an output. Then the head (everything
needed to compute the tensor from the inputs) and the tail (everything needed to compute the
outputs from the tensor and the weights) are two ONNX models, and running head then tail gives
the whole model's outputs. The tensor's bytes are what crosses the network between them.

Cuts are found on the prepared model (`onnx_prep.prepare_onnx`: static shapes, shape subgraphs
folded), because in an export's raw graph `Shape(input)` feeds every Reshape and no tensor
separates anything. The test is dominator-style on the node DAG: for each tensor computed from
the inputs, a forward sweep from the inputs that may not use the tensor must reach no output.

Pieces are named `<model>@<tensor>:head` and `<model>@<tensor>:tail` (`split_piece_names`).
The head and tail are extracted at the shapes given (batch included); `profile_pieces` can batch
them only where the folded graph allows it (checked, see `profiler.rebatched_file`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx

from profiles.kernel_stats import node_flops, tensor_shapes
from profiles.onnx_prep import OnnxPrepError, graph_inputs, prepare_onnx

HEAD, TAIL = "head", "tail"


class SplitError(OnnxPrepError):
    """The tensor named is not a cut of the model (or not in it); the message lists some that are."""


@dataclass(frozen=True)
class Cut:
    """A tensor that separates the model: bytes that cross, and the head's share of the FLOPs."""

    tensor: str
    bytes: int
    head_flops_share: float


def split_piece_names(model: str, tensor: str) -> tuple[str, str]:
    """("<model>@<tensor>:head", "<model>@<tensor>:tail")."""
    return f"{model}@{tensor}:{HEAD}", f"{model}@{tensor}:{TAIL}"


class _Graph:
    """Producers, consumers and constness of a prepared model's tensors."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.nodes = list(model.graph.node)
        self.inputs = [i.name for i in graph_inputs(model)]
        self.outputs = [o.name for o in model.graph.output]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for index, node in enumerate(self.nodes):
            for out in node.output:
                if out:
                    self.producer[out] = index
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(index)
        self.dynamic = self._reach(set(self.inputs), blocked=None)

    def _reach(self, start: set[str], blocked: str | None) -> set[str]:
        """Tensors computed (transitively) from `start`, never reading `blocked`."""
        reached = set(start)
        stack = list(start)
        while stack:
            name = stack.pop()
            if name == blocked:
                continue
            for index in self.consumers.get(name, []):
                for out in self.nodes[index].output:
                    if out and out not in reached:
                        reached.add(out)
                        stack.append(out)
        return reached

    def is_cut(self, tensor: str) -> bool:
        if tensor not in self.dynamic or tensor in self.inputs or tensor in self.outputs:
            return False
        reached = self._reach(set(self.inputs) - {tensor}, blocked=tensor)
        reached.discard(tensor)
        return not any(o in reached for o in self.outputs)

    def ancestors(self, tensor: str) -> set[int]:
        """Nodes needed to compute `tensor` (from the inputs and constants)."""
        seen: set[int] = set()
        stack = [tensor]
        while stack:
            index = self.producer.get(stack.pop())
            if index is None or index in seen:
                continue
            seen.add(index)
            stack.extend(n for n in self.nodes[index].input if n)
        return seen


def _prepared(model, input_shapes) -> onnx.ModelProto:
    return prepare_onnx(model, input_shapes)


def cut_tensors(prepared: onnx.ModelProto) -> list[str]:
    """Every cut tensor of a prepared model, in graph order."""
    graph = _Graph(prepared)
    seen, cuts = set(), []
    for node in graph.nodes:
        for out in node.output:
            if out and out not in seen:
                seen.add(out)
                if graph.is_cut(out):
                    cuts.append(out)
    return cuts


def all_cuts(model, input_shapes: Mapping[str, list[int]]) -> list[Cut]:
    """Every cut with its bytes and head FLOPs share, in graph order."""
    prepared = _prepared(model, input_shapes)
    graph = _Graph(prepared)
    shapes = tensor_shapes(prepared)
    flops = [node_flops(node, shapes)[0] for node in graph.nodes]
    total = sum(flops) or 1.0
    out = []
    for tensor in cut_tensors(prepared):
        if tensor not in shapes:
            continue
        dims, itemsize = shapes[tensor]
        nbytes = itemsize
        for d in dims:
            nbytes *= d
        head = sum(flops[i] for i in graph.ancestors(tensor))
        out.append(Cut(tensor, int(nbytes), head / total))
    return out


def candidate_cuts(model, input_shapes: Mapping[str, list[int]], max_cuts: int = 4,
                   min_share: float = 0.05, max_share: float = 0.95) -> list[Cut]:
    """A handful of cuts worth trying: small crossing tensors, spread over the model.

    Cuts whose head does under `min_share` or over `max_share` of the FLOPs are dropped (they
    move almost nothing). The rest are taken smallest tensor first, skipping one whose head share
    is within 0.1 of a cut already kept, from the cuts no larger than the model's input (sending
    the input instead is always possible); only a model with no such cut (a transformer over
    token ids) gets larger ones. Returned in graph order (growing head share)."""
    cuts = all_cuts(model, input_shapes)
    input_bytes = sum(_input_bytes(model, input_shapes).values())
    pool = [c for c in cuts if min_share <= c.head_flops_share <= max_share]
    small = [c for c in pool if c.bytes <= input_bytes]
    pool = small or pool
    kept: list[Cut] = []
    for cut in sorted(pool, key=lambda c: (c.bytes, c.head_flops_share)):
        if len(kept) >= max_cuts:
            break
        if all(abs(cut.head_flops_share - k.head_flops_share) >= 0.1 for k in kept):
            kept.append(cut)
    return sorted(kept, key=lambda c: c.head_flops_share)


def _input_bytes(model, input_shapes) -> dict[str, int]:
    import numpy as np

    from profiles.onnx_prep import load_onnx

    loaded = load_onnx(model)
    out = {}
    for value in graph_inputs(loaded):
        shape = input_shapes.get(value.name)
        if shape:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
            out[value.name] = int(np.prod(shape)) * dtype.itemsize
    return out


def split_model(model, input_shapes: Mapping[str, list[int]],
                tensor: str) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(head, tail) of the prepared model cut at `tensor`.

    The head maps the model's inputs to `tensor`; the tail maps `tensor` to the model's outputs.
    `SplitError` when `tensor` is not in the prepared model or does not separate it."""
    prepared = _prepared(model, input_shapes)
    graph = _Graph(prepared)
    name = prepared.graph.name or "model"
    if tensor not in graph.producer:
        raise SplitError(f"{name}: no tensor {tensor!r} in the prepared model; cut tensors "
                         f"include {', '.join(map(repr, cut_tensors(prepared)[:8]))}")
    if not graph.is_cut(tensor):
        raise SplitError(f"{name}: tensor {tensor!r} does not separate the inputs from the "
                         f"outputs; cut tensors include "
                         f"{', '.join(map(repr, cut_tensors(prepared)[:8]))}")
    extractor = onnx.utils.Extractor(prepared)
    head = extractor.extract_model(graph.inputs, [tensor])
    tail = extractor.extract_model([tensor], graph.outputs)
    for part, suffix in ((head, HEAD), (tail, TAIL)):
        part.graph.name = f"{name}@{tensor}:{suffix}"
        onnx.checker.check_model(part)
    return head, tail


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "t"


def split_sources(source, tensor: str, directory: Path | None = None):
    """`PieceSource`s of the head and tail of `source` cut at `tensor`, written as ONNX files.

    Files go to `directory` (default `cache_root()/split/`), named by the model's digest and
    the tensor, so a second call reuses them."""
    from profiles.onnx_prep import model_digest
    from profiles.paths import atomic_write_bytes, cache_root
    from profiles.pieces import PieceSource

    directory = Path(directory) if directory is not None else cache_root() / "split"
    digest = model_digest(source.onnx_path)
    shapes_tag = hashlib.sha256(repr(sorted(source.input_shapes.items())).encode()).hexdigest()[:8]
    stem = f"{digest[:16]}-{shapes_tag}-{_file_safe(tensor)}-" \
           f"{hashlib.sha256(tensor.encode()).hexdigest()[:6]}"
    head_path, tail_path = directory / f"{stem}.head.onnx", directory / f"{stem}.tail.onnx"
    if not (head_path.is_file() and tail_path.is_file()):
        head, tail = split_model(source.onnx_path, source.input_shapes, tensor)
        atomic_write_bytes(head_path, head.SerializeToString())
        atomic_write_bytes(tail_path, tail.SerializeToString())
    tail_model = onnx.load(str(tail_path), load_external_data=False)
    tail_shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                   for v in graph_inputs(tail_model)}
    head_name, tail_name = split_piece_names(source.piece, tensor)
    return (PieceSource(piece=head_name, onnx_path=head_path, input_shapes=dict(source.input_shapes)),
            PieceSource(piece=tail_name, onnx_path=tail_path, input_shapes=tail_shapes))
