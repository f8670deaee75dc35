"""Cached `tvm-tuned` rows: the cache key of a piece's tuned row, and the row provider that gives
the rows `profiles.tuning.tune_piece` measured back to the profiler."""

from __future__ import annotations

from collections.abc import Sequence

from profiles.cache import ProfileCache, profile_key
from profiles.hardware import local_hardware
from profiles.measure import MeasureConfig
from profiles.onnx_prep import model_digest
from profiles.rows import TVM_TUNED, batch_of, profile_extra
from profiles.table import PIECE
from profiles.tvm_adapter import tvm_version


def tuned_profile_key(source, hardware: str, config: MeasureConfig | None = None,
                      digest: str | None = None) -> str:
    """The ProfileCache key of a piece's tvm-tuned row (the profiler's key, runtime tvm-tuned)."""
    return profile_key(digest or model_digest(source.onnx_path), source.input_shapes, hardware,
                       TVM_TUNED, batch_of(source.input_shapes), tvm_version(),
                       config or MeasureConfig(), profile_extra())


def cached_tuned_rows(pieces: Sequence, hardware: Sequence[str] | None = None,
                      config: MeasureConfig | None = None, cache=None) -> list[dict]:
    """The cached `tvm-tuned` ProfileTable rows of `pieces` (PieceSource) on `hardware` (default:
    this machine's class), as `profile_pieces` keys them; pieces never tuned give nothing.

    Matches `profiles.profiler.RowProvider` (`provider(pieces, hardware_names)`); a piece whose
    file is missing is skipped (the profiler reports it)."""
    cache = cache if cache is not None else ProfileCache()
    names = list(dict.fromkeys(hardware or [local_hardware().name]))
    rows = []
    for source in pieces:
        try:
            digest = model_digest(source.onnx_path)
        except (OSError, ValueError):
            continue
        for name in names:
            entry = cache.get(tuned_profile_key(source, name, config, digest))
            if entry and isinstance(entry.get("row"), dict):
                rows.append({**entry["row"], PIECE: source.piece})
    return rows
