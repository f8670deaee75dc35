"""Batch sweeps: which batches a piece can be profiled at, and a safely re-batched copy of a
model whose batch dimension is fixed in its ONNX file.

A batch counts calls: the piece's input shapes are one call (batch 1), and batch k stacks k
calls along dim 0 (a model that takes six crops per call runs 6k crops at batch k)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence

from profiles.onnx_prep import model_digest, prepare_onnx
from profiles.paths import atomic_write_bytes
from profiles.pieces import PieceSource, ProfileProblem
from profiles.rows import CALL, leading_dim

logger = logging.getLogger(__name__)


def batch_ladder(max_batch: int = 32) -> tuple[int, ...]:
    """1, 2, 4, ... up to `max_batch` (the batches a sweep usually tries)."""
    out, b = [], 1
    while b <= max_batch:
        out.append(b)
        b *= 2
    return tuple(out)


def batch_plan(source: PieceSource, digest: str, batches: Sequence[int] | None, hardware: str,
               problems: list[ProfileProblem]) -> list[tuple[int, PieceSource, str]]:
    """(batch, source at that batch, model digest) for each batch to profile, ascending; a
    batch that cannot be profiled adds a "FixedBatch" problem (on `hardware`) to `problems`."""
    base = CALL
    if batches is None or set(int(b) for b in batches) == {base}:
        return [(base, source, digest)]
    wanted = sorted({int(b) for b in batches})
    mode = batch_mode(source)
    if mode == "none":
        problems.append(ProfileProblem(
            source.piece, "*", hardware, "FixedBatch",
            f"{source.piece}: its inputs have no common batch dimension; profiled at the given "
            f"shapes only"))
        return [(base, source, digest)]
    plan = []
    for batch in wanted:
        shapes = rebatched_shapes(source, batch)
        if batch == base:
            plan.append((batch, source, digest))
        elif mode == "symbolic":
            plan.append((batch, source.model_copy(update={"input_shapes": shapes}), digest))
        else:
            path = rebatched_file(source, digest, batch)
            if path is None:
                problems.append(ProfileProblem(
                    source.piece, "*", hardware, "FixedBatch",
                    f"{source.piece}: the leading dimension is fixed at "
                    f"{leading_dim(source.input_shapes)} in the ONNX file and cannot be re-set "
                    f"safely to stack calls; profiled at batch 1 only (one call at the given shapes)"))
                return [(base, source, digest)]
            plan.append((batch, PieceSource(piece=source.piece, onnx_path=path, input_shapes=shapes,
                                            sample_inputs=source.sample_inputs), model_digest(path)))
    return plan


def rebatched_shapes(source: PieceSource, batch: int) -> dict[str, list[int]]:
    """The input shapes of `batch` calls stacked: dim 0 of every input whose dim 0 is the
    first input's (one call's leading dim N) becomes batch × N."""
    base = leading_dim(source.input_shapes)
    return {name: ([batch * base, *shape[1:]] if shape and shape[0] == base else list(shape))
            for name, shape in source.input_shapes.items()}


def batch_mode(source: PieceSource) -> str:
    """"symbolic" (dim 0 of the batched inputs is a symbol), "fixed" (a number) or "none"."""
    import onnx

    from profiles.onnx_prep import graph_inputs

    model = onnx.load(str(source.onnx_path), load_external_data=False)
    base = leading_dim(source.input_shapes)
    modes = set()
    for value in graph_inputs(model):
        shape = source.input_shapes.get(value.name)
        if not shape or shape[0] != base:
            continue
        dims = value.type.tensor_type.shape.dim
        if not value.type.tensor_type.HasField("shape") or not dims or not dims[0].HasField("dim_value"):
            modes.add("symbolic")
        else:
            modes.add("fixed")
    if not modes:
        return "none"
    return "fixed" if "fixed" in modes else "symbolic"


def rebatched_file(source: PieceSource, digest: str, batch: int):
    """A copy of a fixed-batch model with its batch dim set to `batch`, when that is safe.

    Safe means: the re-batched model prepares, and on a random batch each sample's output
    equals the original model's output for that sample alone (ONNX Runtime, rtol 1e-4). A
    Reshape with the batch baked into its target fails that check. Returns None when unsafe;
    the checked file is cached under `cache_root()/rebatched/`."""
    import numpy as np
    import onnx

    from profiles.onnx_prep import random_inputs
    from profiles.ort_adapter import run_onnxruntime
    from profiles.paths import cache_root

    path = cache_root() / "rebatched" / f"{digest[:32]}-b{batch}.onnx"
    if path.is_file():
        return path
    base = leading_dim(source.input_shapes)
    shapes = rebatched_shapes(source, batch)
    model = onnx.load(str(source.onnx_path))
    for value in model.graph.input:
        if value.name in shapes and shapes[value.name] != list(source.input_shapes[value.name]):
            value.type.tensor_type.shape.dim[0].ClearField("dim_param")
            value.type.tensor_type.shape.dim[0].dim_value = batch * base
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == base:
            dims[0].dim_value = batch * base
    try:
        batched = prepare_onnx(model, shapes)
        single = prepare_onnx(source.onnx_path, source.input_shapes)
        with tempfile.TemporaryDirectory(prefix="rebatch-") as tmp:
            onnx.save(batched, f"{tmp}/batched.onnx")
            onnx.save(single, f"{tmp}/single.onnx")
            feeds = random_inputs(batched, seed=1)
            outs = run_onnxruntime(f"{tmp}/batched.onnx", feeds, 1)
            for i in range(batch):
                part = {k: (v[i * base:(i + 1) * base] if list(v.shape) != list(
                    source.input_shapes[k]) else v) for k, v in feeds.items()}
                ref = run_onnxruntime(f"{tmp}/single.onnx", part, 1)
                for got, want in zip(outs, ref):
                    if got.shape[0] != batch * base or not np.allclose(
                            got[i * base:(i + 1) * base], want, rtol=1e-4, atol=1e-5):
                        return None
    except Exception as exc:  # noqa: BLE001 - any failure (prepare, ORT, shapes) means "not safe"
        logger.info("%s: cannot re-batch to %d: %s", source.piece, batch, exc)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, model.SerializeToString())
    return path


