"""The `ProfileTable` contract of DESIGN.md: column names declared once, here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiles.errors import UserError

PIECE = "piece"
HARDWARE = "hardware"
RUNTIME = "runtime"
BATCH = "batch"
LATENCY_MS_P50 = "latency_ms_p50"
LATENCY_MS_P95 = "latency_ms_p95"
MEMORY_MB = "memory_mb"
SOURCE = "source"
MEASURED_AT = "measured_at"
TVM_VERSION = "tvm_version"
ERROR_BAND = "error_band"

PROFILE_COLUMNS = [
    PIECE, HARDWARE, RUNTIME, BATCH, LATENCY_MS_P50, LATENCY_MS_P95, MEMORY_MB,
    SOURCE, MEASURED_AT, TVM_VERSION, ERROR_BAND,
]
REQUIRED_COLUMNS = PROFILE_COLUMNS[:-1]

# An hour per call, 100 TB, a million calls per batch: anything larger is a typo.
PLAUSIBLE_MAX = {LATENCY_MS_P50: 3.6e6, LATENCY_MS_P95: 3.6e6, MEMORY_MB: 1e8, BATCH: 1e6}
PLAUSIBLE_MIN = 1e-6  # a nanosecond, a byte: positive numbers below this are typos
RUNTIMES = ("tvm", "tvm-tuned", "onnxruntime", "openvino", "onnxruntime-cuda", "onnxruntime-trt")
# measured-served: measured while serving a plan under load here (`placement verify --store-profiles`)
MEASURED_SERVED = "measured-served"
SOURCES = ("measured-local", "measured-rpc", MEASURED_SERVED, "estimated", "imported")


class ProfileTableError(UserError):
    """A profile table (usually a user's CSV) that the planner cannot use."""


def empty_profile_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in PROFILE_COLUMNS})


def _dtype(column: str) -> str:
    if column in (LATENCY_MS_P50, LATENCY_MS_P95, MEMORY_MB, ERROR_BAND):
        return "float64"
    if column == BATCH:
        return "int64"
    return "object"


def validate_profile_table(df: pd.DataFrame, origin: str = "profile table") -> pd.DataFrame:
    """Check a table from outside (CSV import) so bad rows fail with one line, not deep in the solver."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ProfileTableError(f"{origin}: missing column(s) {', '.join(missing)}")
    df = df.copy()
    if ERROR_BAND not in df.columns:
        df[ERROR_BAND] = float("nan")
    df = df.reset_index(drop=True)
    for column in (LATENCY_MS_P50, LATENCY_MS_P95, MEMORY_MB, BATCH):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = (values.isna() | (values < PLAUSIBLE_MIN) | ~np.isfinite(values.fillna(0.0))
               | (values > PLAUSIBLE_MAX[column]))
        if column == BATCH:
            bad |= values != values.round()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ProfileTableError(
                f"{origin}: row {row + 1}: column {column} must be a positive number"
                f"{' (whole)' if column == BATCH else ''} from {PLAUSIBLE_MIN:g} to {PLAUSIBLE_MAX[column]:g}, "
                f"got {df[column].iloc[row]}"
            )
        df[column] = values
    df[BATCH] = df[BATCH].astype("int64")
    for column in (PIECE, HARDWARE):
        blank = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if blank.any():
            row = int(blank.to_numpy().argmax())
            raise ProfileTableError(f"{origin}: row {row + 1}: column {column} is empty")
    bad_source = ~df[SOURCE].isin(SOURCES)
    if bad_source.any():
        row = int(bad_source.to_numpy().argmax())
        raise ProfileTableError(
            f"{origin}: row {row + 1}: column source must be one of {', '.join(SOURCES)}, "
            f"got {df[SOURCE].iloc[row]!r}"
        )
    bad_runtime = ~df[RUNTIME].isin(RUNTIMES)
    if bad_runtime.any():
        row = int(bad_runtime.idxmax())
        raise ProfileTableError(
            f"{origin}: row {row + 1}: column runtime must be one of {', '.join(RUNTIMES)}, "
            f"got {df[RUNTIME].iloc[row]!r}"
        )
    band = pd.to_numeric(df[ERROR_BAND], errors="coerce")
    given = df[ERROR_BAND].notna() & (df[ERROR_BAND].astype(str).str.strip() != "")
    bad_band = given & (band.isna() | (band < 0) | ~np.isfinite(band.fillna(0.0)))
    if bad_band.any():
        row = int(bad_band.to_numpy().argmax())
        raise ProfileTableError(f"{origin}: row {row + 1}: column {ERROR_BAND} must be a number "
                                f">= 0 or empty, got {df[ERROR_BAND].iloc[row]!r}")
    df[ERROR_BAND] = band
    bad_p95 = df[LATENCY_MS_P95] < df[LATENCY_MS_P50]
    if bad_p95.any():
        row = int(bad_p95.idxmax())
        raise ProfileTableError(
            f"{origin}: row {row + 1}: latency_ms_p95 is below latency_ms_p50"
        )
    return df[PROFILE_COLUMNS].reset_index(drop=True)
