"""Cached `measured-rpc` rows: the cache key of a row measured on a remote device, and the row
provider that gives those rows back to the profiler."""

from __future__ import annotations

from collections.abc import Sequence

from profiles.cache import ProfileCache, profile_key
from profiles.measure import MeasureConfig
from profiles.onnx_prep import model_digest
from profiles.rows import batch_of, profile_extra
from profiles.table import PIECE
from profiles.tvm_adapter import tvm_version

MEASURED_RPC = "measured-rpc"
REMOTE_RUNTIMES = ("tvm", "tvm-tuned")


def remote_profile_key(source, hardware: str, runtime: str,
                       config: MeasureConfig | None = None, digest: str | None = None) -> str:
    """The ProfileCache key of a measured-rpc row (the profiler's key plus source=measured-rpc)."""
    return profile_key(digest or model_digest(source.onnx_path), source.input_shapes, hardware,
                       runtime,
                       batch_of(source.input_shapes), tvm_version(), config or MeasureConfig(),
                       {**profile_extra(), "source": MEASURED_RPC})


def cached_remote_rows(pieces: Sequence, hardware: Sequence[str] | None = None,
                       config: MeasureConfig | None = None, cache=None) -> list[dict]:
    """Cached measured-rpc rows of `pieces` on the `hardware` classes (both TVM runtimes).

    Matches `profiles.profiler.RowProvider`. A tvm-tuned row measured with an older state of the
    database is still returned (the next `--tracker` run measures it again)."""
    if not hardware:
        return []
    cache = cache if cache is not None else ProfileCache()
    rows = []
    for source in pieces:
        try:
            digest = model_digest(source.onnx_path)
        except (OSError, ValueError):
            continue
        for name in dict.fromkeys(hardware):
            for runtime in REMOTE_RUNTIMES:
                entry = cache.get(remote_profile_key(source, name, runtime, config, digest))
                if entry and isinstance(entry.get("row"), dict):
                    rows.append({**entry["row"], PIECE: source.piece})
    return rows
