"""A piece made ready to measure: prepared for TVM when that works, else its inputs fixed only,
so ONNX Runtime still measures a model TVM cannot take (control flow, recurrent ops).

`prepare_piece` never fails on a model that only TVM's preparation cannot handle: the failure
becomes `PreparedPiece.failure`, one line naming the operators, which the profiler records as
the TVM row's problem. A file that is missing or unreadable, or shapes that do not fit the
model, are still the user's error (`OnnxLoadError`, `InputShapeError`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from profiles.onnx_prep import (
    InputShapeError,
    IOBytes,
    OnnxLoadError,
    OnnxPrepError,
    fix_input_shapes,
    input_specs,
    io_bytes,
    prepare_failure_reason,
    prepare_onnx,
    sample_feeds,
    save_model,
    static_shape,
)
from profiles.pieces import PieceSource

# Runtimes that run the model as exported (their own graph optimiser), so a failed preparation
# does not stop them.
RUNS_UNPREPARED = ("onnxruntime",)


@dataclass(frozen=True)
class PreparedPiece:
    model: onnx.ModelProto  # prepared (static, folded), or only its inputs fixed when `failure`
    failure: str | None = None  # why it could not be prepared for TVM (one line)

    @property
    def ok(self) -> bool:
        return self.failure is None


def prepare_piece(source: PieceSource, prepare=prepare_onnx) -> PreparedPiece:
    """The prepared model (named after the piece so the runtimes' messages name it), or the
    model with its inputs fixed and the reason preparation failed. `prepare`: the preparing
    function (`onnx_prep.prepare_onnx`)."""
    try:
        model = prepare(source.onnx_path, source.input_shapes)
        dynamic = [o.name for o in model.graph.output if static_shape(o) is None]
        if dynamic:  # e.g. an If whose branches differ: TVM needs static shapes
            raise OnnxPrepError(f"output(s) {', '.join(dynamic)} have shapes that depend on the "
                                f"input values")
        failure = None
    except (OnnxLoadError, InputShapeError):
        raise
    except OnnxPrepError as exc:
        model = fix_input_shapes(source.onnx_path, source.input_shapes)
        failure = prepare_failure_reason(source.onnx_path, exc)
    model.graph.name = source.piece
    return PreparedPiece(model, failure)


def piece_io(prepared: PreparedPiece, source: PieceSource) -> IOBytes:
    """Bytes in and out of one call: from the static shapes of a prepared model, or by running
    an unprepared one once with ONNX Runtime (its outputs' shapes are known only then)."""
    if prepared.ok:
        return io_bytes(prepared.model)
    from profiles.ort_adapter import run_onnxruntime

    feeds = sample_feeds(input_specs(prepared.model), 0, source.sample_inputs)
    with tempfile.TemporaryDirectory(prefix="io-bytes-") as tmp:
        path = save_model(prepared.model, Path(tmp) / "model.onnx")
        outputs = run_onnxruntime(path, feeds, 1)
    return IOBytes(input_bytes=int(sum(v.nbytes for v in feeds.values())),
                   output_bytes=int(sum(np.asarray(o).nbytes for o in outputs)))
