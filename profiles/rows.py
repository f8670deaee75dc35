"""ProfileTable rows: how one is built, how a list of them becomes a typed table, and how rows
from elsewhere (tuned, remote, cached) merge into a table. Every producer uses these, so the
columns, the keys' `extra` versions and the merge rule are written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd

from profiles import table as pt
from profiles.cache import runtime_versions
from profiles.estimate import ESTIMATED
from profiles.measure import Measurement

TVM_TUNED = "tvm-tuned"
MEASURED_LOCAL = "measured-local"
IDENTITY = [pt.PIECE, pt.HARDWARE, pt.RUNTIME, pt.BATCH]  # one row per these (and source)


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


CALL = 1  # the batch of a row measured at a piece's own input shapes: one call


def batch_of(input_shapes: Mapping[str, Sequence[int]]) -> int:
    """The batch, in the planner's sense, of a profile at a piece's own input shapes: 1.

    The input shapes (the spec's, or the model's fixed dims) define one call, whatever dim 0
    says: a model that takes a fixed stack of six crops per call is profiled at batch 1, and
    batch k stacks k calls (`profiles.batching.rebatched_shapes`)."""
    del input_shapes  # the shapes are one call, whatever they are
    return CALL


def leading_dim(input_shapes: Mapping[str, Sequence[int]]) -> int:
    """Dim 0 of the first input (1 for a scalar input): what one call stacks along dim 0."""
    first = next(iter(input_shapes.values()), [1])
    return int(first[0]) if first else 1


def profile_extra() -> dict[str, str]:
    """The `extra` versions `profile_key` takes for every ProfileTable row's cache key."""
    versions = runtime_versions()
    return {"onnxruntime": versions["onnxruntime"], "onnxslim": versions["onnxslim"],
            "onnx": versions["onnx"]}


def measured_row(piece: str, hardware: str, runtime: str, batch: int, m: Measurement, *,
                 source: str, tvm_version: str) -> dict:
    """A ProfileTable row of one measurement, measured now."""
    return {
        pt.PIECE: piece, pt.HARDWARE: hardware, pt.RUNTIME: runtime, pt.BATCH: batch,
        pt.LATENCY_MS_P50: m.latency_ms_p50, pt.LATENCY_MS_P95: m.latency_ms_p95,
        pt.MEMORY_MB: m.memory_mb, pt.SOURCE: source, pt.MEASURED_AT: now_utc(),
        pt.TVM_VERSION: tvm_version, pt.ERROR_BAND: float("nan"),
    }


def rows_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """A ProfileTable (column order and dtypes of `profiles.table`) from row dicts."""
    typed = pt.empty_profile_table()
    if not rows:
        return typed
    df = pd.DataFrame(list(rows), columns=pt.PROFILE_COLUMNS)
    return df.astype({c: typed[c].dtype for c in pt.PROFILE_COLUMNS}).reset_index(drop=True)


IMPORTED = "imported"
MEASURED_SERVED = pt.MEASURED_SERVED
# Which row of a piece, hardware, runtime and batch the planner sees: measured while serving a
# plan here (the user asked for it with `placement verify --store-profiles`: compute as served,
# with the other pieces and the load beside it, which an isolated run under-states), then measured
# here or on the device, then imported, then estimated (lower wins; an unknown source ranks with
# imported).
PRECEDENCE = {MEASURED_SERVED: -1, MEASURED_LOCAL: 0, "measured-rpc": 0, IMPORTED: 1, ESTIMATED: 2}


def merge_rows(table: pd.DataFrame, rows: Sequence[Mapping]) -> pd.DataFrame:
    """`table` plus `rows` (tuned, remote, imported, cached), one place for the rule: of the rows
    with the same piece, hardware, runtime and batch only those of the best source stay
    (measured > imported > estimated, `PRECEDENCE`); a row already there with the same source is
    replaced (so merging twice is merging once)."""
    if not len(rows):
        return table
    extra = rows_table(rows)
    merged = pd.concat([df for df in (table, extra) if len(df)] or [extra], ignore_index=True)
    merged = merged.drop_duplicates(IDENTITY + [pt.SOURCE], keep="last").reset_index(drop=True)
    rank = merged[pt.SOURCE].map(lambda s: PRECEDENCE.get(s, PRECEDENCE[IMPORTED]))
    best = rank.groupby([merged[c] for c in IDENTITY]).transform("min")
    merged = merged[rank == best].reset_index(drop=True)
    return rows_table(merged.to_dict("records"))
