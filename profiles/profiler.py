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
from pathlib import Path

import pandas as pd

from profiles.batching import (
    batch_ladder,
    batch_mode,
    batch_plan,
    rebatched_file,
    rebatched_shapes,
)
from profiles.cache import ProfileCache, profile_key, runtime_versions
from profiles.calibration import Calibration, current_calibration
from profiles.contention import CpuWatch, is_contended
from profiles.contention import describe as describe_contention
from profiles.estimate import calibrated_rows
from profiles.gpu_runtimes import (
    GPU_RUNTIMES,
    gpu_runtime_available,
    local_gpu_class,
    local_gpu_name,
    unavailable_reason,
)
from profiles.hardware import HardwareClass, get_hardware, hardware_catalog, local_cores, local_hardware
from profiles.kernel_stats import KernelStats, kernel_stats_many, stats_key
from profiles.measure import MeasureConfig, Measurement
from profiles.onnx_prep import IOBytes, model_digest, prepare_onnx
from profiles.openvino_adapter import OpenVinoError, measure_openvino, openvino_available, openvino_version
from profiles.ort_adapter import OrtError, measure_onnxruntime
from profiles.pieces import PieceSource, ProfileProblem, RowProvider
from profiles.prepared import RUNS_UNPREPARED, PreparedPiece, piece_io, prepare_piece
from profiles.rows import (
    MEASURED_LOCAL,
    batch_of,
    measured_row,
    merge_rows,
    profile_extra,
    rows_table,
)
from profiles.table import MEMORY_MB, PIECE, empty_profile_table
from profiles.tvm_adapter import TvmError, TvmImportError, measure_tvm, tvm_version

logger = logging.getLogger(__name__)

__all__ = ["PieceSource", "ProfileProblem", "ProfileReport", "ProgressEvent", "RowProvider",
           "batch_ladder", "batch_mode", "piece_io_bytes", "piece_kernel_stats", "profile_pieces",
           "rebatched_file", "rebatched_shapes"]

MEASURABLE_RUNTIMES = ("tvm", "onnxruntime", "openvino", *GPU_RUNTIMES)
# what `profile_pieces` measures unless told: OpenVINO where the package is installed, ONNX
# Runtime's CUDA / TensorRT providers where onnxruntime-gpu and a catalog GPU are present
DEFAULT_RUNTIMES = ("tvm", "onnxruntime", *(("openvino",) if openvino_available() else ()),
                    *(r for r in GPU_RUNTIMES if gpu_runtime_available(r)))


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


@dataclass
class ProfileReport:
    """The ProfileTable and what could not be measured.

    `measurements[(piece, runtime)]`: the measurement at the piece's first batch;
    `batch_measurements[(piece, runtime, batch)]`: every batch; `kernel_stats[piece]`: what the
    estimator read from the piece's fused kernels (present when rows were estimated)."""

    table: pd.DataFrame
    problems: list[ProfileProblem] = field(default_factory=list)
    measurements: dict[tuple[str, str], Measurement] = field(default_factory=dict)
    batch_measurements: dict[tuple[str, str, int], Measurement] = field(default_factory=dict)
    kernel_stats: dict[str, KernelStats] = field(default_factory=dict)

    def agreement(self) -> pd.DataFrame:
        """TVM vs ONNX Runtime on the same random input, per piece and batch: max |diff| and
        max |diff| / max |ORT output| (from each TVM measurement)."""
        records = [{"piece": piece, "batch": batch, "max_abs_diff": m.max_abs_diff_vs_ort,
                    "max_rel_diff": m.max_rel_diff_vs_ort}
                   for (piece, runtime, batch), m in sorted(self.batch_measurements.items())
                   if runtime == "tvm" and m.max_abs_diff_vs_ort is not None]
        return pd.DataFrame(records, columns=["piece", "batch", "max_abs_diff", "max_rel_diff"])


def _resolve_hardware(names: Sequence[str]) -> list[HardwareClass]:
    catalog = hardware_catalog()
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise ValueError(f"unknown hardware class(es) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(sorted(catalog))}")
    return [get_hardware(n) for n in names]


DEFAULT_MAX_BATCH_MEMORY_MB = 8192.0


def profile_pieces(
    pieces: list[PieceSource],
    hardware: list[str],
    *,
    row_providers: Sequence[RowProvider] = (),
    runtimes: Sequence[str] = DEFAULT_RUNTIMES,
    config: MeasureConfig | None = None,
    cache: ProfileCache | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    batches: Sequence[int] | None = None,
    max_batch_memory_mb: float = DEFAULT_MAX_BATCH_MEMORY_MB,
    calibration: Calibration | None = None,
) -> ProfileReport:
    """Measure every piece on this machine under each runtime; estimate the other classes.

    Local rows (`local_hardware()`, source measured-local) are always in the table, even when
    the local class is not in `hardware`, because the estimates derive from them. A cached
    measurement (same model bytes, shapes, class, runtime, batch, versions, config) is reused
    without measuring. A model that cannot be read or shaped raises (`OnnxPrepError`); a runtime
    that fails on a piece becomes a `ProfileProblem` and the other runtime is still measured.

    `batches` (opt-in; default: the input shapes as given) profiles each piece at each batch
    size, in increasing order, stopping a runtime once the next batch would need more than
    `max_batch_memory_mb` (scaled from the last one measured). A piece whose batch dimension is
    fixed in the ONNX file is re-batched only when that is checked to be safe (each sample of a
    batched run equals the same sample run alone); otherwise it gets its given batch only and a
    `ProfileProblem` ("FixedBatch") says so. Estimated rows carry every batch measured here.
    `calibration` (default: `calibration.current_calibration()`) drives the estimates.

    `row_providers` (e.g. `profiles.providers.default_row_providers()`: cached tvm-tuned and
    measured-rpc rows) add rows measured elsewhere: each `provider(pieces, hardware_names)` is
    called with this machine's class and then the requested ones; its rows join the table and
    replace estimates of the same piece, hardware, runtime and batch. A provider that raises
    becomes a `ProfileProblem`. Without providers the table has no such rows."""
    config = config or MeasureConfig()
    cache = cache if cache is not None else ProfileCache()
    unknown_runtimes = [r for r in runtimes if r not in MEASURABLE_RUNTIMES]
    if unknown_runtimes:
        raise ValueError(f"cannot measure runtime(s) {unknown_runtimes}; "
                         f"measurable: {', '.join(MEASURABLE_RUNTIMES)}")
    if batches is not None and (not batches or any(int(b) < 1 for b in batches)):
        raise ValueError(f"batches must be positive integers, got {list(batches)}")
    local = local_hardware()
    requested = _resolve_hardware(hardware)
    others = [h for h in requested if h.name != local.name]
    version = tvm_version()
    report = ProfileReport(table=empty_profile_table())
    digests = [model_digest(source.onnx_path) for source in pieces]  # a missing file fails now
    plans = [batch_plan(source, digest, batches, local.name, report.problems)
             for source, digest in zip(pieces, digests)]
    total = sum(len(plan) for plan in plans) * len(runtimes)
    done = 0

    def progress(piece: str, runtime: str, step: str) -> None:
        if on_progress is not None:
            on_progress(ProgressEvent(piece, runtime, step, done, total))

    extra = profile_extra()
    rows: list[dict] = []
    prepared_by_piece: dict[str, list] = {}
    gpu_rows: list[dict] = []  # rows measured on this machine's GPU: its class, not `local`
    for source, plan in zip(pieces, plans):
        for runtime in runtimes:
            where, skipped = _measured_on(runtime, local)
            if skipped is not None:  # a GPU runtime without its provider or GPU here
                report.problems.append(ProfileProblem(source.piece, runtime, local.name, "GpuUnavailable", skipped))
                done += len(plan)
                progress(source.piece, runtime, "skipped")
                continue
            last: tuple[int, float] | None = None  # (batch, memory MB) of the last measured batch
            for batch, batch_source, batch_digest in plan:
                if last is not None and last[1] * batch / last[0] > max_batch_memory_mb:
                    report.problems.append(ProfileProblem(
                        source.piece, runtime, local.name, "BatchMemoryLimit",
                        f"{source.piece}: {runtime} batch {batch} and above not profiled: "
                        f"~{last[1] * batch / last[0]:.0f} MB expected, limit "
                        f"{max_batch_memory_mb:.0f} MB"))
                    done += len([b for b, *_ in plan if b >= batch])
                    progress(source.piece, runtime, "skipped")
                    break
                prepared = prepared_by_piece.setdefault(f"{source.piece}@{batch}", [])
                key = profile_key(batch_digest, batch_source.input_shapes, where.name, runtime,
                                  batch, version, config,
                                  _sample_extra(_runtime_extra(extra, runtime), batch_source))
                row, measurement, problem, step = _measure_or_reuse(
                    batch_source, batch_digest, runtime, key, batch, where, config, cache, version,
                    prepared, lambda step, r=runtime, p=source.piece: progress(p, r, step))
                done += 1
                if row is not None:
                    (gpu_rows if where is not local else rows).append(row)
                    report.batch_measurements[(source.piece, runtime, batch)] = measurement
                    if batch == plan[0][0]:
                        report.measurements[(source.piece, runtime)] = measurement
                    last = (batch, float(row[MEMORY_MB]))
                if problem is not None:
                    report.problems.append(problem)
                progress(source.piece, runtime, step)

    local_table = rows_table(rows)
    provided = _provided_rows(row_providers, pieces,
                              [local.name, *[h.name for h in requested]], report)
    tables = [local_table]
    if others and rows:
        stats = _piece_stats(pieces, plans, cache, prepared_by_piece,
                             lambda step: progress("*", "*", step))
        report.kernel_stats = stats
        calibration = calibration or current_calibration(cache.store)
        io_bytes = {s.piece: b for s in pieces if (b := _known_io_bytes(s, cache)) is not None}
        for hw in others:  # an accelerator's host link carries each piece's own inputs and outputs
            tables.append(calibrated_rows(local_table, local, hw, stats, calibration, io_bytes))
        if on_progress is not None:
            on_progress(ProgressEvent("*", "*", "estimate", done, total))
    combined = pd.concat([t for t in tables if not t.empty] or [empty_profile_table()],
                         ignore_index=True)
    combined = merge_rows(combined, [*gpu_rows, *provided])  # a measured GPU row replaces its estimate
    report.table = rows_table(combined.to_dict("records")) if len(combined) else empty_profile_table()
    return report


def _measured_on(runtime: str, local: HardwareClass) -> tuple[HardwareClass, str | None]:
    """(the class a runtime's rows belong to, why it cannot be measured here or None): the CPU
    runtimes run on `local`; the GPU runtimes on this machine's GPU's catalog class."""
    if runtime not in GPU_RUNTIMES:
        return local, None
    reason = unavailable_reason(runtime)
    if reason is not None:
        return local, reason
    return get_hardware(local_gpu_class()), None


def _provided_rows(providers: Sequence[RowProvider], pieces: list[PieceSource],
                   hardware_names: list[str], report: ProfileReport) -> list[dict]:
    rows: list[dict] = []
    for provider in providers:
        try:
            rows.extend(provider(pieces, hardware_names) or [])
        except Exception as exc:  # noqa: BLE001 - a provider's failure is a problem, not a crash
            name = getattr(provider, "__qualname__", repr(provider))
            logger.warning("row provider %s failed: %s", name, exc)
            report.problems.append(ProfileProblem("*", "*", "*", type(exc).__name__,
                                                  f"row provider {name} failed: {exc}"))
    return rows


def _piece_stats(pieces, plans, cache: ProfileCache, prepared_by_piece: dict,
                 progress: Callable[[str], None]) -> dict[str, KernelStats]:
    """Kernel statistics per piece (at its first batch), cached; misses in one TVM child."""
    stats: dict[str, KernelStats] = {}
    missing = []
    for source, plan in zip(pieces, plans):
        batch, batch_source, batch_digest = plan[0]
        key = stats_key(batch_digest, batch_source.input_shapes)
        entry = cache.get(key)
        if entry is not None and "kernel_stats" in entry:
            stats[source.piece] = KernelStats.from_dict(entry["kernel_stats"])
            continue
        prepared = prepared_by_piece.setdefault(f"{source.piece}@{batch}", [])
        if not prepared:
            prepared.append(_prepare(batch_source))
        if not prepared[0].ok:  # no folded graph to read kernels from: provisional estimates
            continue
        missing.append((source.piece, key, prepared[0].model, batch))
    if missing:
        progress("stats")
        found = kernel_stats_many([(piece, model, batch) for piece, _, model, batch in missing])
        for (piece, key, _, _), piece_stats in zip(missing, found):
            if not piece_stats.note:  # a crash or timeout may not recur: retry next time
                cache.put(key, {"kernel_stats": piece_stats.to_dict()})
            stats[piece] = piece_stats
    return stats


def piece_kernel_stats(pieces: list[PieceSource],
                       cache: ProfileCache | None = None) -> dict[str, KernelStats]:
    """Kernel statistics (FLOPs and bytes per fused kernel) of each piece at its input shapes,
    as the estimator sees them; cached by content like the measurements."""
    cache = cache if cache is not None else ProfileCache()
    digests = [model_digest(source.onnx_path) for source in pieces]
    plans = [[(batch_of(source.input_shapes), source, digest)] for source, digest in zip(pieces, digests)]
    return _piece_stats(pieces, plans, cache, {}, lambda step: None)


def _prepare(source: PieceSource) -> PreparedPiece:
    return prepare_piece(source, prepare=prepare_onnx)


def _measure_or_reuse(source: PieceSource, digest: str, runtime: str, key: str, batch: int,
                      local: HardwareClass, config: MeasureConfig, cache: ProfileCache,
                      version: str, prepared: list, progress: Callable[[str], None]):
    """(row, measurement, problem, step) for one piece under one runtime on this machine."""
    cached = cache.get(key)
    if cached is not None and "error" in cached:  # a cached import failure: deterministic
        return None, None, ProfileProblem(source.piece, runtime, local.name, **cached["error"]), "failed"
    if cached is not None:
        row = {**cached["row"], PIECE: source.piece}
        measurement = Measurement.model_validate(cached["measurement"])
        if not _contended(measurement):
            return row, measurement, None, "cached"
        if _machine_busy():  # still busy: the stored row, said again
            return row, measurement, _contention_problem(source, runtime, local, measurement), "cached"
        # quiet now: measure again below and replace the contended row
    if not prepared:
        progress("prepare")
        prepared.append(_prepare(source))
        _remember_io_bytes(cache, digest, source, prepared[0])
    if not prepared[0].ok and runtime not in RUNS_UNPREPARED:
        return None, None, ProfileProblem(
            source.piece, runtime, local.name, "PrepareError",
            f"{source.piece}: {runtime} cannot run it: {prepared[0].failure}"), "failed"
    progress("measure")
    try:
        measurement = _measure_quietly(prepared[0], source, runtime, local, config, progress)
    except (TvmError, OrtError, OpenVinoError) as exc:
        logger.info("%s: %s failed: %s", source.piece, runtime, exc)
        problem = ProfileProblem(source.piece, runtime, local.name, type(exc).__name__,
                                 one_line(str(exc)))
        if isinstance(exc, TvmImportError):  # same model + same TVM = same failure
            cache.put(key, {"error": {"error_type": problem.error_type, "message": problem.message}})
        return None, None, problem, "failed"
    row = measured_row(source.piece, local.name, runtime, batch, measurement,
                       source=MEASURED_LOCAL, tvm_version=version)
    cache.put(key, {"row": row, "measurement": measurement.model_dump(), "model": digest})
    if _contended(measurement):  # stored with its noise figure; replaced once the machine is quiet
        return row, measurement, _contention_problem(source, runtime, local, measurement), "contended"
    return row, measurement, None, "measured"


def _contended(m: Measurement) -> bool:
    return is_contended(m.others_cpu_share)


def _machine_busy() -> bool:
    """Other processes use the cores now (watched idle for a moment)."""
    with CpuWatch() as watch:
        pass
    return watch.result.contended


def _contention_problem(source: PieceSource, runtime: str, local: HardwareClass,
                        m: Measurement) -> ProfileProblem:
    return ProfileProblem(
        source.piece, runtime, local.name, "Contention",
        f"{source.piece} ({runtime}): {describe_contention(m.others_cpu_share or 0.0, m.attempts)}; "
        f"stored with that noise figure and measured again when the machine is quiet")


def _measure_quietly(prepared, source: PieceSource, runtime: str, local: HardwareClass,
                     config: MeasureConfig, progress: Callable[[str], None]) -> Measurement:
    """Measure once; while other processes used the cores (`profiles.contention`), measure
    again up to `config.contended_retries` times and keep the least contended measurement."""

    def once() -> Measurement:
        if runtime == "tvm":
            return measure_tvm(prepared.model, source.input_shapes, local, config,
                               sample_inputs=source.sample_inputs)
        if runtime == "openvino":
            return measure_openvino(prepared.model, source.input_shapes, config, threads=local.cores)
        if runtime in GPU_RUNTIMES:  # `local` is the GPU's class; the host's cores run the session
            return measure_onnxruntime(prepared.model, source.input_shapes, config, threads=local_cores(),
                                       prepare=prepared.ok, sample_inputs=source.sample_inputs,
                                       runtime=runtime)
        return measure_onnxruntime(prepared.model, source.input_shapes, config, threads=local.cores,
                                   prepare=prepared.ok, sample_inputs=source.sample_inputs)

    best = once()
    attempts = 1
    while is_contended(best.others_cpu_share) and attempts <= config.contended_retries:
        progress("re-measure")
        again = once()
        attempts += 1
        best = min(best, again, key=lambda m: (m.others_cpu_share or 0.0, m.latency_ms_p50))
    return best.model_copy(update={"attempts": attempts})


def one_line(text: str) -> str:
    """The first line of a message (a runtime's error can carry a log tail), for a table cell."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _runtime_extra(extra: dict[str, str], runtime: str) -> dict[str, str]:
    """The cache key's versions for `runtime`: OpenVINO rows also depend on OpenVINO's version,
    GPU rows on the GPU's name (the other runtimes' keys are unchanged)."""
    # "openvino-measure" 2: rows carry the contention figure (rows without it are measured again)
    if runtime == "openvino":
        return {**extra, "openvino": openvino_version(), "openvino-measure": "2"}
    if runtime in GPU_RUNTIMES:  # the same class name can be another board or driver
        return {**extra, "gpu": local_gpu_name() or ""}
    return extra


def _sample_extra(extra: dict[str, str], source: PieceSource) -> dict[str, str]:
    """A piece run with given input values (`sample_inputs`) is keyed by those values too."""
    if source.sample_inputs is None:
        return extra
    return {**extra, "sample_inputs": hashlib.sha256(Path(source.sample_inputs).read_bytes()).hexdigest()}


def _io_key(digest: str, input_shapes: dict[str, list[int]]) -> str:
    fields = {"io_bytes": digest,
              "input_shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())},
              "versions": {k: v for k, v in runtime_versions().items() if k != "apache-tvm"}}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def _remember_io_bytes(cache: ProfileCache, digest: str, source: PieceSource,
                       prepared: PreparedPiece) -> IOBytes:
    io = piece_io(prepared, source)
    cache.put(_io_key(digest, source.input_shapes), {"io_bytes": dataclasses.asdict(io)})
    return io


def _known_io_bytes(source: PieceSource, cache: ProfileCache) -> float | None:
    """The piece's input + output bytes at its input shapes if profiling stored them, else None
    (nothing is prepared for it here)."""
    try:
        entry = cache.get(_io_key(model_digest(source.onnx_path), source.input_shapes))
    except OSError:
        return None
    io = entry.get("io_bytes") if entry else None
    return float(io["input_bytes"] + io["output_bytes"]) if io else None


def piece_io_bytes(source: PieceSource, cache: ProfileCache | None = None) -> IOBytes:
    """Bytes in and out of one inference of the piece at its input shapes.

    Cached by content next to the profile rows (`profile_pieces` fills it when it prepares a
    model), so a warm run does not prepare the model again."""
    cache = cache if cache is not None else ProfileCache()
    digest = model_digest(source.onnx_path)
    entry = cache.get(_io_key(digest, source.input_shapes))
    if entry is not None and "io_bytes" in entry:
        return IOBytes(**entry["io_bytes"])
    return _remember_io_bytes(cache, digest, source, _prepare(source))
