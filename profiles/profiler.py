"""Profile pieces: measure each on this machine under each runtime (cached), estimate the rest.

`profile_pieces` is the entry point the CLI and the app call. It prints nothing; it reports
progress through `on_progress(ProgressEvent)` and returns failures as data (`ProfileReport.problems`)
so one model that TVM cannot import still gets its ONNX Runtime rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from profiles.cache import ProfileCache, profile_key, runtime_versions
from profiles.estimate import estimate_rows
from profiles.hardware import HardwareClass, get_hardware, hardware_catalog, local_hardware
from profiles.measure import MeasureConfig, Measurement
from profiles.onnx_prep import IOBytes, io_bytes, model_digest, prepare_onnx
from profiles.ort_adapter import OrtError, measure_onnxruntime
from profiles.table import (
    BATCH,
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    LATENCY_MS_P95,
    MEASURED_AT,
    MEMORY_MB,
    PIECE,
    PROFILE_COLUMNS,
    RUNTIME,
    SOURCE,
    TVM_VERSION,
    empty_profile_table,
)
from profiles.tvm_adapter import TvmError, TvmImportError, measure_tvm, tvm_version

logger = logging.getLogger(__name__)

MEASURED_LOCAL = "measured-local"
MEASURABLE_RUNTIMES = ("tvm", "onnxruntime")


class PieceSource(BaseModel):
    """Where a piece's ONNX file is and the input shapes to profile it at (batch included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    piece: str
    onnx_path: Path
    input_shapes: dict[str, list[int]]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of profiling; `done` of `total` (piece, runtime) measurements are finished.

    step: "prepare", "measure" (starting a measurement), "cached", "measured", "failed",
    "estimate" (estimated rows added, runtime "*")."""

    piece: str
    runtime: str
    step: str
    done: int
    total: int


@dataclass(frozen=True)
class ProfileProblem:
    """A measurement that failed; the piece's other runtimes were still profiled."""

    piece: str
    runtime: str
    hardware: str
    error_type: str
    message: str


@dataclass
class ProfileReport:
    """The ProfileTable and what could not be measured."""

    table: pd.DataFrame
    problems: list[ProfileProblem] = field(default_factory=list)
    measurements: dict[tuple[str, str], Measurement] = field(default_factory=dict)


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _resolve_hardware(names: Sequence[str]) -> list[HardwareClass]:
    catalog = hardware_catalog()
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise ValueError(f"unknown hardware class(es) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(sorted(catalog))}")
    return [get_hardware(n) for n in names]


def _row(piece: str, hardware: str, runtime: str, batch: int, m: Measurement, version: str) -> dict:
    return {
        PIECE: piece, HARDWARE: hardware, RUNTIME: runtime, BATCH: batch,
        LATENCY_MS_P50: m.latency_ms_p50, LATENCY_MS_P95: m.latency_ms_p95, MEMORY_MB: m.memory_mb,
        SOURCE: MEASURED_LOCAL, MEASURED_AT: _now_utc(), TVM_VERSION: version,
        ERROR_BAND: float("nan"),
    }


def _batch(source: PieceSource) -> int:
    first = next(iter(source.input_shapes.values()), [1])
    return int(first[0]) if first else 1


def profile_pieces(
    pieces: list[PieceSource],
    hardware: list[str],
    *,
    runtimes: Sequence[str] = MEASURABLE_RUNTIMES,
    config: MeasureConfig | None = None,
    cache: ProfileCache | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> ProfileReport:
    """Measure every piece on this machine under each runtime; estimate the other classes.

    Local rows (`local_hardware()`, source measured-local) are always in the table, even when
    the local class is not in `hardware`, because the estimates derive from them. A cached
    measurement (same model bytes, shapes, class, runtime, batch, versions, config) is reused
    without measuring. A model that cannot be read or shaped raises (`OnnxPrepError`); a runtime
    that fails on a piece becomes a `ProfileProblem` and the other runtime is still measured."""
    config = config or MeasureConfig()
    cache = cache if cache is not None else ProfileCache()
    unknown_runtimes = [r for r in runtimes if r not in MEASURABLE_RUNTIMES]
    if unknown_runtimes:
        raise ValueError(f"cannot measure runtime(s) {unknown_runtimes}; "
                         f"measurable: {', '.join(MEASURABLE_RUNTIMES)}")
    local = local_hardware()
    others = [h for h in _resolve_hardware(hardware) if h.name != local.name]
    versions = runtime_versions()
    version = tvm_version()
    report = ProfileReport(table=empty_profile_table())
    total = len(pieces) * len(runtimes)
    done = 0

    def progress(piece: str, runtime: str, step: str) -> None:
        if on_progress is not None:
            on_progress(ProgressEvent(piece, runtime, step, done, total))

    extra = {"onnxruntime": versions["onnxruntime"], "onnxslim": versions["onnxslim"],
             "onnx": versions["onnx"]}
    digests = [model_digest(source.onnx_path) for source in pieces]  # a missing file fails now
    rows: list[dict] = []
    for source, digest in zip(pieces, digests):
        batch = _batch(source)
        prepared: list = []  # prepared lazily, once per piece, only on a cache miss
        for runtime in runtimes:
            key = profile_key(digest, source.input_shapes, local.name, runtime, batch, version,
                              config, extra)
            row, measurement, problem, step = _measure_or_reuse(
                source, digest, runtime, key, batch, local, config, cache, version, prepared,
                lambda step, r=runtime, p=source.piece: progress(p, r, step))
            done += 1
            if row is not None:
                rows.append(row)
                report.measurements[(source.piece, runtime)] = measurement
            if problem is not None:
                report.problems.append(problem)
            progress(source.piece, runtime, step)

    local_table = _table(rows)
    tables = [local_table]
    for hw in others:
        tables.append(estimate_rows(local_table, local, hw))
    if on_progress is not None and others:
        on_progress(ProgressEvent("*", "*", "estimate", done, total))
    report.table = _table(pd.concat(tables, ignore_index=True).to_dict("records")) if rows else (
        empty_profile_table())
    return report


def _measure_or_reuse(source: PieceSource, digest: str, runtime: str, key: str, batch: int,
                      local: HardwareClass, config: MeasureConfig, cache: ProfileCache,
                      version: str, prepared: list, progress: Callable[[str], None]):
    """(row, measurement, problem, step) for one piece under one runtime on this machine."""
    cached = cache.get(key)
    if cached is not None and "error" in cached:  # a cached import failure: deterministic
        return None, None, ProfileProblem(source.piece, runtime, local.name, **cached["error"]), "failed"
    if cached is not None:
        row = {**cached["row"], PIECE: source.piece}
        return row, Measurement.model_validate(cached["measurement"]), None, "cached"
    if not prepared:
        progress("prepare")
        prepared.append(prepare_onnx(source.onnx_path, source.input_shapes))
        _remember_io_bytes(cache, digest, source, prepared[0])
    progress("measure")
    try:
        if runtime == "tvm":
            measurement = measure_tvm(prepared[0], source.input_shapes, local, config)
        else:
            measurement = measure_onnxruntime(prepared[0], source.input_shapes, config,
                                              threads=local.cores)
    except (TvmError, OrtError) as exc:
        logger.info("%s: %s failed: %s", source.piece, runtime, exc)
        problem = ProfileProblem(source.piece, runtime, local.name, type(exc).__name__, str(exc))
        if isinstance(exc, TvmImportError):  # same model + same TVM = same failure
            cache.put(key, {"error": {"error_type": problem.error_type, "message": problem.message}})
        return None, None, problem, "failed"
    row = _row(source.piece, local.name, runtime, batch, measurement, version)
    cache.put(key, {"row": row, "measurement": measurement.model_dump()})
    return row, measurement, None, "measured"


def _table(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return empty_profile_table()
    df = pd.DataFrame(rows, columns=PROFILE_COLUMNS)
    typed = empty_profile_table()
    return df.astype({c: typed[c].dtype for c in PROFILE_COLUMNS}).reset_index(drop=True)


def _io_key(digest: str, input_shapes: dict[str, list[int]]) -> str:
    fields = {"io_bytes": digest,
              "input_shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())},
              "versions": {k: v for k, v in runtime_versions().items() if k != "apache-tvm"}}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def _remember_io_bytes(cache: ProfileCache, digest: str, source: PieceSource,
                       prepared) -> IOBytes:
    io = io_bytes(prepared)
    cache.put(_io_key(digest, source.input_shapes), {"io_bytes": dataclasses.asdict(io)})
    return io


def piece_io_bytes(source: PieceSource, cache: ProfileCache | None = None) -> IOBytes:
    """Bytes in and out of one inference of the piece at its input shapes.

    Cached by content next to the profile rows (`profile_pieces` fills it when it prepares a
    model), so a warm run does not prepare the model again."""
    cache = cache if cache is not None else ProfileCache()
    digest = model_digest(source.onnx_path)
    entry = cache.get(_io_key(digest, source.input_shapes))
    if entry is not None and "io_bytes" in entry:
        return IOBytes(**entry["io_bytes"])
    return _remember_io_bytes(cache, digest, source,
                              prepare_onnx(source.onnx_path, source.input_shapes))
