"""What is profiled (`PieceSource`: a piece's ONNX file and input shapes) and what could not be
(`ProfileProblem`): the two records every profiling path (local, tuned, remote) shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class PieceSource(BaseModel):
    """Where a piece's ONNX file is and the input shapes to profile it at (batch included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    piece: str
    onnx_path: Path
    input_shapes: dict[str, list[int]]
    sample_inputs: Path | None = None  # .npz of input values that matter (by input name)


@dataclass(frozen=True)
class ProfileProblem:
    """A measurement that failed; the piece's other runtimes were still profiled."""

    piece: str
    runtime: str
    hardware: str
    error_type: str
    message: str

    def __str__(self) -> str:  # what a person reads: the message, never the dataclass repr
        return self.message


# Rows measured elsewhere (cached tvm-tuned rows, measured-rpc rows): `provider(pieces,
# hardware_names)` returns ProfileTable rows (dicts) for those pieces on those classes.
RowProvider = Callable[[list[PieceSource], list[str]], list[dict]]
