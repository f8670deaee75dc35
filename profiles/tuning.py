"""Budgeted MetaSchedule tuning (`tvm-tuned`), one tuning database per hardware class.

`tune_piece(source, hardware, budget_s)`:

1. **Database.** One MetaSchedule JSON database per hardware class and TVM version under
   `cache_root()/tuning/<hardware>/<tvm-version>/` (`database_workload.json`,
   `database_tuning_record.json`). Every model tuned for that class adds to it, and a later model
   whose kernels (fused TIR functions) are structurally the same reuses their records. The JSON
   database appends one line per measured trial as it goes, so a crash or `kill -9` of the
   tuning process loses no finished trial; a torn last line is dropped before the next run
   (`TuningDatabase.repair`). A file lock keeps two tuning runs off one database.
2. **Budget -> trials.** The budget is the search time for this model on this class in total
   over all runs (a per-model plan, `runs/<piece>-<hash>/plan.json`, records what was spent).
   What is left buys `T = left / seconds-per-trial / tasks` trials per task (`trials_per_task`
   overrides it); seconds per trial is calibrated per database from earlier runs (1.5 s until
   measured). Every task gets its share — no piling onto the first tasks — and a task that
   already holds `T` records (from an interrupted run, or from another model) is skipped, so a
   re-run only does what is missing and a larger budget tunes further. The time left is shared
   among the tasks still to tune, so slow trials thin every task instead of starving the last
   ones; fast trials raise `T` in top-up passes; the search stops at the budget.
3. **Child process.** The search runs in a spawned child (MetaSchedule crashes and hangs stay
   there); it reports progress (tasks done, trials, the best estimated latency, time left)
   through a pipe, and the parent turns that into `TuneProgress` events. This layer prints
   nothing.
4. **Measure.** The tuned model is compiled with the database applied (`from_onnx` -> `zero`
   pipeline inside the database's scope, i.e. `MetaScheduleApplyDatabase` after fusion ->
   default lowering -> `relax.build`, as `profiles.tvm_adapter` does untuned) and measured with
   the same `MeasureConfig` protocol, in another child. The row (runtime `tvm-tuned`,
   `measured-local`) goes to the `ProfileCache` under `profile_key(..., runtime="tvm-tuned")`;
   `cached_tuned_rows` gives them back to the profiler.

Two TVM 0.27 pitfalls are worked around here (measured on this 2-core machine):
- `import tvm.s_tir.tensor_intrin` (done by every `TuneContext` and by MetaSchedule's default
  build function) takes ~60 s because it parses every CUDA/ROCm/Hexagon intrinsic. For CPU
  targets only the intrinsics of the target's architecture are loaded (`_light_tensor_intrin`),
  and the builder uses its own build function that does not import them at all.
- MetaSchedule's `LocalBuilder` starts a fresh process pool (a `import tvm` each, seconds) for
  every batch; `_persistent_builder` keeps one pool, restarted every 50 batches. XGBoost trains
  with one thread: with two, its OpenMP threads fight TVM's thread pool (20 s per fit instead of
  0.4 s).
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from profiles.child import ChildFailure, run_in_child
from profiles.hardware import HardwareClass, get_hardware, local_hardware
from profiles.measure import MeasureConfig, Measurement
from profiles.paths import atomic_write_text, cache_root

logger = logging.getLogger(__name__)

TVM_TUNED = "tvm-tuned"
MEASURED_LOCAL = "measured-local"
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
CALIBRATION_FILE = "calibration.json"
TASK_STATE_FILE = "task_state.json"
LOCK_FILE = "tuning.lock"
PLAN_FILE = "plan.json"           # per model: search time spent so far, trials per task
MAX_PASSES = 4                    # top-up passes when trials are faster than calibrated

DEFAULT_SECONDS_PER_TRIAL = 1.5   # until a run on this database has measured it
MAX_TRIALS_PER_TASK = 2000
TRIALS_PER_ITER = 32              # trials measured per search iteration (cost model refits)
FAILED_RUN_SECS = 1e9             # MetaSchedule records a failed build/run as 1e10 s
STOP_GRACE_S = 300.0              # the parent kills a child this long past its budget


class TuningError(RuntimeError):
    """Tuning failed: the child crashed, was killed, or TVM raised. Finished trials are kept."""


class TuningBusyError(TuningError):
    """Another tuning run holds this hardware class's database."""


class _BudgetSpent(Exception):
    """Raised inside the search (from a measure callback) when the wall-clock budget is spent."""


# --- budgets -----------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s|ms)?", re.IGNORECASE)


def parse_budget(text: str | float | int) -> float:
    """"90s", "20m", "1h", "1h30m", "1.5h" or a number of seconds -> seconds (> 0)."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        if not s:
            raise ValueError("empty budget; expected e.g. 90s, 20m or 1h")
        while pos < len(s):
            match = _DURATION.match(s, pos)
            if not match or match.end() == pos:
                raise ValueError(f"budget {text!r}: expected e.g. 90s, 20m, 1h or 1h30m")
            value, unit = float(match.group(1)), (match.group(2) or "s")
            seconds += value * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
            pos = match.end()
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"budget {text!r}: must be a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# --- the database on disk (no TVM needed) ------------------------------------------------------

def _tvm_version() -> str:
    from profiles.tvm_adapter import tvm_version

    return tvm_version()


def tuning_dir(hardware: str, version: str | None = None) -> Path:
    """cache_root()/tuning/<hardware>/<tvm-version>/ (not created)."""
    return cache_root() / "tuning" / hardware / (version or _tvm_version())


@dataclass(frozen=True)
class WorkloadStats:
    """What the database holds for one workload (task): trials recorded and the best one."""

    records: int
    best_s: float | None   # mean run time of the best successful trial, seconds


class TuningDatabase:
    """The files of one MetaSchedule JSON database, read without TVM.

    `database_workload.json`: one line per workload, `["<structural hash>", "<module>"]`;
    `database_tuning_record.json`: one line per trial, `[workload line number, [trace, run_secs,
    target, args]]`, failed trials with `run_secs` 1e10."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @classmethod
    def for_hardware(cls, hardware: str, version: str | None = None) -> TuningDatabase:
        return cls(tuning_dir(hardware, version))

    @property
    def workload_path(self) -> Path:
        return self.directory / WORKLOAD_FILE

    @property
    def record_path(self) -> Path:
        return self.directory / RECORD_FILE

    def exists(self) -> bool:
        return self.record_path.is_file() and self.record_path.stat().st_size > 0

    def repair(self) -> int:
        """Drop a torn last line (a process killed mid-append); returns the lines dropped.

        TVM's JSON database refuses to load a file with a line it cannot parse."""
        dropped = 0
        for path in (self.workload_path, self.record_path):
            if not path.is_file():
                continue
            data = path.read_bytes()
            if not data:
                continue
            lines = data.split(b"\n")
            keep = []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                    keep.append(line)
                except ValueError:
                    dropped += 1
                    logger.warning("tuning database %s: dropping unreadable line %d", path, i + 1)
            if dropped or not data.endswith(b"\n"):
                from profiles.paths import atomic_write_bytes

                atomic_write_bytes(path, b"".join(line + b"\n" for line in keep))
        return dropped

    def _workload_hashes(self) -> list[str]:
        if not self.workload_path.is_file():
            return []
        hashes = []
        with open(self.workload_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        hashes.append(str(json.loads(line)[0]))
                    except (ValueError, IndexError, TypeError):
                        hashes.append("")
        return hashes

    def workload_stats(self) -> dict[str, WorkloadStats]:
        """Per workload structural hash: trials recorded and the best mean run time."""
        hashes = self._workload_hashes()
        counts: dict[str, int] = {}
        best: dict[str, float] = {}
        if not self.record_path.is_file():
            return {}
        with open(self.record_path, encoding="utf-8") as f:
            for line in f:
                try:
                    index, record = json.loads(line)
                    shash = hashes[int(index)]
                except (ValueError, IndexError, TypeError):
                    continue
                counts[shash] = counts.get(shash, 0) + 1
                run_secs = record[1] if isinstance(record, list) and len(record) > 1 else None
                if run_secs:
                    mean = sum(float(x) for x in run_secs) / len(run_secs)
                    if mean < FAILED_RUN_SECS:
                        best[shash] = min(best.get(shash, mean), mean)
        return {h: WorkloadStats(n, best.get(h)) for h, n in counts.items()}

    def record_count(self) -> int:
        if not self.record_path.is_file():
            return 0
        with open(self.record_path, "rb") as f:
            return sum(1 for line in f if line.strip())

    # calibration: wall seconds per trial, measured by earlier runs on this database
    def seconds_per_trial(self) -> float | None:
        try:
            value = json.loads((self.directory / CALIBRATION_FILE).read_text())["seconds_per_trial"]
            return float(value) if value > 0 else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def update_calibration(self, trials: int, seconds: float) -> None:
        """Blend a run's seconds per trial into the stored figure (weighted by trials)."""
        if trials < 4 or seconds <= 0:
            return
        path = self.directory / CALIBRATION_FILE
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        n_old = int(old.get("trials", 0))
        spt_old = float(old.get("seconds_per_trial", 0) or 0)
        spt_new = seconds / trials
        weight_old = min(n_old, 2000)
        spt = (spt_old * weight_old + spt_new * trials) / (weight_old + trials) if spt_old else spt_new
        atomic_write_text(path, json.dumps({"seconds_per_trial": spt, "trials": n_old + trials,
                                            "updated": _now_utc()}, indent=1) + "\n")

    def exhausted(self) -> set[str]:
        """Workloads whose search space ran out (asked for more trials than it could give)."""
        try:
            return set(json.loads((self.directory / TASK_STATE_FILE).read_text())["exhausted"])
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    def mark_exhausted(self, shash: str) -> None:
        done = self.exhausted() | {shash}
        atomic_write_text(self.directory / TASK_STATE_FILE,
                          json.dumps({"exhausted": sorted(done)}, indent=1) + "\n")

    def lock(self):
        """An exclusive lock on this database (released when the process dies)."""
        from filelock import FileLock

        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory / LOCK_FILE))


# --- progress and results ----------------------------------------------------------------------

@dataclass(frozen=True)
class TuneProgress:
    """One step of `tune_piece`.

    phase: "start" (child process started, `child_pid` set), "extract" (importing the model),
    "plan" (tasks known), "tune" (trials measured), "stopped" (budget spent), "compile" and
    "measure" (the tuned model), "done". `estimated_ms` is the sum over tasks of weight x best
    trial so far, over the `tasks_with_estimate` tasks that have one (a kernel-time estimate of
    the model's latency; untuned kernels are not in it)."""

    phase: str
    piece: str
    hardware: str
    tasks_total: int = 0
    tasks_done: int = 0
    task: str = ""
    trials_done: int = 0
    trials_planned: int = 0
    estimated_ms: float | None = None
    tasks_with_estimate: int = 0
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    child_pid: int | None = None

    @property
    def time_left_s(self) -> float:
        return max(0.0, self.budget_s - self.elapsed_s)


@dataclass(frozen=True)
class TaskOutcome:
    """One tuning task (a fused kernel) of one run."""

    name: str
    workload: str            # structural hash: the database's key
    weight: int              # how many times the model calls it
    records_before: int
    target_trials: int
    trials_run: int
    best_us: float | None
    skipped: bool
    exhausted: bool


@dataclass
class TuneResult:
    piece: str
    hardware: str
    database: Path
    budget_s: float
    trials_per_task: int
    tasks: list[TaskOutcome] = field(default_factory=list)
    trials_run: int = 0
    search_s: float = 0.0
    stopped_by_budget: bool = False
    seconds_per_trial: float = DEFAULT_SECONDS_PER_TRIAL
    measurement: Measurement | None = None
    row: dict | None = None
    source: object | None = None  # the PieceSource tuned
    spent_before_s: float = 0.0   # search time earlier runs spent on this model and class

    @property
    def tasks_skipped(self) -> int:
        return sum(1 for t in self.tasks if t.skipped)


# --- the parent side ---------------------------------------------------------------------------

def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _profile_extra() -> dict[str, str]:
    """The `extra` versions `profiles.profiler.profile_pieces` keys its rows with."""
    from profiles.cache import runtime_versions

    versions = runtime_versions()
    return {"onnxruntime": versions["onnxruntime"], "onnxslim": versions["onnxslim"],
            "onnx": versions["onnx"]}


def _batch(input_shapes: Mapping[str, Sequence[int]]) -> int:
    first = next(iter(input_shapes.values()), [1])
    return int(first[0]) if first else 1


def resolve_tuning_hardware(hardware: HardwareClass | str | None) -> HardwareClass:
    """The class to tune for (default: this machine's); it must be runnable on this CPU."""
    from profiles.tvm_adapter import check_runnable_here

    hw = local_hardware() if hardware is None else (
        hardware if isinstance(hardware, HardwareClass) else get_hardware(hardware))
    check_runnable_here(hw)
    return hw


def tuned_profile_key(source, hardware: str, config: MeasureConfig | None = None,
                      digest: str | None = None) -> str:
    """The ProfileCache key of a piece's tvm-tuned row (the profiler's key, runtime tvm-tuned)."""
    from profiles.cache import profile_key
    from profiles.onnx_prep import model_digest

    return profile_key(digest or model_digest(source.onnx_path), source.input_shapes, hardware,
                       TVM_TUNED, _batch(source.input_shapes), _tvm_version(),
                       config or MeasureConfig(), _profile_extra())


def tune_piece(
    source,
    hardware: HardwareClass | str | None = None,
    budget_s: float = 1200.0,
    *,
    trials_per_task: int | None = None,
    config: MeasureConfig | None = None,
    cache=None,
    measure: bool = True,
    seed: int = 0,
    on_progress: Callable[[TuneProgress], None] | None = None,
) -> TuneResult:
    """Tune one piece (`profiles.profiler.PieceSource`) for `hardware` within `budget_s`.

    Spreads the trials over all of the model's tasks (see the module docstring), adds them to
    the class's shared database, then (with `measure`) compiles the model with the database
    applied, measures it with `config` and caches the `tvm-tuned` row. Raises `TuningError` when
    the search child dies (its finished trials stay in the database; run again to resume),
    `TuningBusyError` when another run holds the database, `NotMeasurableHereError` for a class
    this CPU cannot run, `OnnxPrepError` for a model that cannot be prepared."""
    from filelock import Timeout

    from profiles.cache import ProfileCache
    from profiles.onnx_prep import input_specs, prepare_onnx, save_model

    config = config or MeasureConfig()
    cache = cache if cache is not None else ProfileCache()
    hw = resolve_tuning_hardware(hardware)
    budget_s = float(budget_s)
    if budget_s <= 0:
        raise ValueError("budget_s must be positive")
    if trials_per_task is not None and trials_per_task < 1:
        raise ValueError("trials_per_task must be at least 1")
    db = TuningDatabase.for_hardware(hw.name)
    piece = source.piece
    started = time.monotonic()
    view = {"budget_s": budget_s}  # the budget left for this run, once the plan is read

    def emit(phase: str, **fields) -> None:
        if on_progress is not None:
            on_progress(TuneProgress(phase=phase, piece=piece, hardware=hw.name,
                                     elapsed_s=time.monotonic() - started,
                                     budget_s=view["budget_s"], **fields))

    prepared = prepare_onnx(source.onnx_path, source.input_shapes)
    lock = db.lock()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise TuningBusyError(f"another tuning run is using the {hw.name} database "
                              f"({db.directory}); wait for it or stop it") from None
    try:
        db.repair()
        prior_spt = db.seconds_per_trial() or DEFAULT_SECONDS_PER_TRIAL
        run_dir = db.directory / "runs" / _run_name(piece, prepared, source.input_shapes)
        run_dir.mkdir(parents=True, exist_ok=True)
        plan = _read_plan(run_dir)
        spent_before = float(plan.get("spent_s", 0.0))
        budget_left = max(0.0, budget_s - spent_before)
        view["budget_s"] = budget_left
        with tempfile.TemporaryDirectory(prefix="tvm-tune-") as tmp:
            model_path = save_model(prepared, Path(tmp) / "model.onnx")
            payload = {
                "model_path": str(model_path), "inputs": input_specs(prepared),
                "target": dict(hw.tvm_target or {}), "arch": hw.arch, "cores": hw.cores,
                "database": str(db.directory), "log_dir": str(run_dir),
                "budget_s": budget_s, "budget_left_s": budget_left,
                "spent_before_s": spent_before, "plan_path": str(run_dir / PLAN_FILE),
                "trials_per_task": trials_per_task,
                "previous_trials_per_task": plan.get("trials_per_task"),
                "seconds_per_trial": prior_spt, "seed": seed,
            }
            tracker = _ProgressTracker(emit)
            try:
                outcome = _run_child_events(
                    "_child_tune", payload, timeout_s=budget_left + STOP_GRACE_S,
                    log_path=run_dir / "child.log", on_event=tracker.on_event)
            except ChildFailure as exc:
                raise TuningError(_failure_message(exc, "tuning", db)) from exc
    finally:
        lock.release()

    result = TuneResult(
        piece=piece, hardware=hw.name, database=db.directory, budget_s=budget_s,
        trials_per_task=int(outcome["trials_per_task"]),
        tasks=[TaskOutcome(**t) for t in outcome["tasks"]],
        trials_run=int(outcome["trials_run"]), search_s=float(outcome["search_s"]),
        stopped_by_budget=bool(outcome["stopped_by_budget"]),
        seconds_per_trial=float(outcome["seconds_per_trial"]), source=source,
        spent_before_s=spent_before,
    )
    db.update_calibration(result.trials_run, result.search_s)
    if result.stopped_by_budget:
        emit("stopped", tasks_total=len(result.tasks))
    if measure:
        emit("compile", tasks_total=len(result.tasks), tasks_done=len(result.tasks))
        measurement = measure_tuned(prepared, source.input_shapes, hw, config,
                                    database=db.directory,
                                    on_stage=lambda stage: emit(stage, tasks_total=len(result.tasks),
                                                                tasks_done=len(result.tasks)))
        row = _row(piece, hw.name, _batch(source.input_shapes), measurement)
        cache.put(tuned_profile_key(source, hw.name, config), {
            "row": row, "measurement": measurement.model_dump(),
            "tuning": {"database": str(db.directory), "records": db.record_count(),
                       "trials_per_task": result.trials_per_task,
                       "trials_run": result.trials_run, "budget_s": budget_s,
                       "tasks": len(result.tasks)},
        })
        result.measurement, result.row = measurement, row
    emit("done", tasks_total=len(result.tasks), tasks_done=len(result.tasks),
         trials_done=result.trials_run, trials_planned=result.trials_run)
    return result


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "piece"


def _run_name(piece: str, prepared, input_shapes: Mapping[str, Sequence[int]]) -> str:
    """runs/<piece>-<hash of the prepared model and shapes>: one plan per model and shapes."""
    import hashlib

    from profiles.onnx_prep import model_digest

    fields = {"model": model_digest(prepared),
              "shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())}}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"{_safe_name(piece)}-{key}"


def _read_plan(run_dir: Path) -> dict:
    try:
        plan = json.loads((run_dir / PLAN_FILE).read_text())
        return plan if isinstance(plan, dict) else {}
    except (OSError, ValueError):
        return {}


def _failure_message(exc: ChildFailure, what: str, db: TuningDatabase) -> str:
    detail = exc.message if exc.error_type is None else f"{exc.error_type}: {exc.message}"
    if exc.stage == "extract" and exc.error_type is not None:
        # TVM could not import the model: a re-run would fail the same way.
        return (f"{what} failed during {exc.stage}: {detail}. TVM cannot import this model, so it "
                "cannot be tuned; ONNX Runtime still measures it (placement profile).")
    text = (f"{what} failed during {exc.stage}: {detail}. Finished trials are kept in "
            f"{db.directory} ({db.record_count()} records); run again to resume.")
    if exc.log_tail and exc.error_type is None:
        text += f"\n--- last lines of the log ---\n{exc.log_tail}"
    return text


def _row(piece: str, hardware: str, batch: int, m: Measurement, source: str = MEASURED_LOCAL) -> dict:
    from profiles import table as pt

    return {
        pt.PIECE: piece, pt.HARDWARE: hardware, pt.RUNTIME: TVM_TUNED, pt.BATCH: batch,
        pt.LATENCY_MS_P50: m.latency_ms_p50, pt.LATENCY_MS_P95: m.latency_ms_p95,
        pt.MEMORY_MB: m.memory_mb, pt.SOURCE: source, pt.MEASURED_AT: _now_utc(),
        pt.TVM_VERSION: _tvm_version(), pt.ERROR_BAND: float("nan"),
    }


class _ProgressTracker:
    """Turns the child's event dicts into `TuneProgress`."""

    def __init__(self, emit):
        self.emit = emit
        self.tasks: list[dict] = []
        self.best: dict[int, float] = {}
        self.trials_done = 0
        self.trials_planned = 0
        self.tasks_done = 0
        self.task = ""
        self.pid: int | None = None

    def _estimate(self) -> tuple[float | None, int]:
        if not self.best:
            return None, 0
        total_s = sum(self.tasks[i]["weight"] * b for i, b in self.best.items())
        return total_s * 1000.0, len(self.best)

    def _send(self, phase: str) -> None:
        est, n = self._estimate()
        self.emit(phase, tasks_total=len(self.tasks), tasks_done=self.tasks_done, task=self.task,
                  trials_done=self.trials_done, trials_planned=self.trials_planned,
                  estimated_ms=est, tasks_with_estimate=n, child_pid=self.pid)

    def on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "child":
            self.pid = event["pid"]
            self._send("start")
        elif kind == "extract":
            self._send("extract")
        elif kind == "plan":
            self.tasks = event["tasks"]
            self.trials_planned = int(event["trials_planned"])
            self.tasks_done = sum(1 for t in self.tasks if t["skip"])
            for i, t in enumerate(self.tasks):
                if t.get("best_s") is not None:
                    self.best[i] = t["best_s"]
            self._send("plan")
        elif kind == "replan":
            self.trials_planned = int(event["trials_planned"])
            self.tasks_done = 0
            self._send("tune")
        elif kind == "trials":
            i = event["index"]
            self.task = self.tasks[i]["name"] if i < len(self.tasks) else ""
            self.trials_done += int(event.get("new", 0))
            if event.get("best_s") is not None:
                self.best[i] = min(self.best.get(i, math.inf), event["best_s"])
            if event.get("planned") is not None:
                self.trials_planned = int(event["planned"])
            if event.get("task_done"):
                self.tasks_done += 1
            self._send("tune")


# --- running a child with progress events ----------------------------------------------------

def _run_child_events(function: str, payload: dict, *, timeout_s: float, log_path: Path,
                      on_event: Callable[[dict], None]):
    """`run_in_child` of this module's `function`, with a fresh log and every event to `on_event`."""
    Path(log_path).write_text("")  # one run's log, not every run's
    return run_in_child(__name__, function, payload, timeout_s=timeout_s, log_path=log_path,
                        on_event=on_event)


# --- in the child: TVM ---------------------------------------------------------------------------

_INTRIN_MODULES = ("cuda", "rocm", "hexagon", "riscv_cpu", "arm_cpu", "x86")


def _light_tensor_intrin(arch: str) -> None:
    """Keep `import tvm.s_tir.tensor_intrin` to the CPU intrinsics of `arch` (x86_64 or aarch64).

    The full import parses every GPU/DSP intrinsic (~60 s on 2 cores); a CPU tuning run only
    needs its own architecture's. Must run before anything imports tensor_intrin; only for
    processes that tune or compile for a CPU target."""
    import sys
    import types

    keep = "x86" if arch == "x86_64" else "arm_cpu"
    for name in _INTRIN_MODULES:
        if name == keep:
            continue
        full = f"tvm.s_tir.tensor_intrin.{name}"
        if full not in sys.modules:
            sys.modules[full] = types.ModuleType(full)


def _import_model(model_path: str, inputs: Mapping, target_dict: dict):
    """from_onnx -> zero pipeline's input, and the resolved target."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    from profiles.tvm_adapter import resolve_target

    model = onnx.load(model_path)
    mod = from_onnx(model, shape_dict={k: list(v[0]) for k, v in inputs.items()},
                    dtype_dict={k: v[1] for k, v in inputs.items()})
    target, note = resolve_target(target_dict)
    return mod, target, note


def compile_module(model_path: str, inputs: Mapping, target_dict: dict,
                   database: str | None = None):
    """Compile an ONNX file like `profiles.tvm_adapter`, with a tuning database applied if given.

    Returns (executable, constant bytes, storage bytes, target, note). With `database`, the
    `zero` pipeline runs inside the database's scope, so `MetaScheduleApplyDatabase` replaces
    every fused kernel that has a successful record; the others keep default schedules."""
    from tvm import relax

    from profiles.tvm_adapter import constant_and_storage_bytes

    mod, target, note = _import_model(model_path, inputs, target_dict)
    with target:
        if database:
            from tvm.s_tir import meta_schedule as ms

            db = ms.database.JSONDatabase(work_dir=database, module_equality="structural")
            with db:
                mod = relax.get_pipeline("zero")(mod)
        else:
            mod = relax.get_pipeline("zero")(mod)
        lowered = relax.get_pipeline("default")(mod)
    const_bytes, storage_bytes = constant_and_storage_bytes(lowered)
    executable = relax.build(lowered, target, relax_pipeline=None)
    return executable, const_bytes, storage_bytes, target, note


def _make_f_build():
    """MetaSchedule's default build without `import tvm.s_tir.tensor_intrin`.

    A nested function, so the builder's worker processes receive it by value (cloudpickle) and
    need not import this package."""

    def _build(mod, target, _params):
        from tvm.driver import build as tvm_build
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

        mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
        return tvm_build(mod, target=target)

    return _build


def _persistent_builder(max_workers: int, timeout_s: float = 60.0, restart_every: int = 50):
    """A MetaSchedule builder whose worker pool lives across batches (restarted now and then:
    TVM restarts its pool every batch because of a slow leak in the workers)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import _worker_func
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class _Builder(PyBuilder):
        def __init__(self):
            super().__init__()
            self.f_build = _make_f_build()
            self.pool = None
            self.uses = 0

        def build(self, build_inputs):
            if self.pool is None or self.uses >= restart_every:
                if self.pool is not None:
                    self.pool.shutdown()
                self.pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_s)
                self.uses = 0
            self.uses += 1
            results = []
            f_build = self.f_build
            for item in self.pool.map_with_error_catching(
                    lambda x: _worker_func(*x),
                    [(f_build, None, b.mod, b.target, None) for b in build_inputs]):
                if item.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(item.value, None))
                elif item.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"build timed out after {timeout_s} s"))
                else:
                    results.append(BuilderResult(None, f"build failed: {item.value}"))
            return results

    return _Builder()


def _reporter(report, on_batch):
    """A measure callback: counts trials, tracks the best, reports, stops on the budget."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class _Reporter(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
                  runner_results):
            best = None
            for result in runner_results:
                secs = [float(x) for x in (result.run_secs or [])]
                if result.error_msg is None and secs:
                    mean = sum(secs) / len(secs)
                    if mean < FAILED_RUN_SECS:
                        best = mean if best is None else min(best, mean)
            on_batch(len(measure_candidates), best)

    return _Reporter()


def _child_tune(payload: dict, report) -> dict:
    """In the child: extract tasks, plan trials per task, tune task by task, stop on the budget."""
    t_start = time.time()
    deadline = t_start + float(payload["budget_left_s"])
    _light_tensor_intrin(payload["arch"])
    report({"event": "extract", "stage": "extract"})
    import tvm_ffi
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.logging import get_loggers_from_work_dir
    from tvm.s_tir.meta_schedule.utils import fork_seed

    mod, target, note = _import_model(payload["model_path"], payload["inputs"], payload["target"])
    if note:
        print(note, flush=True)
    with target:
        mod = relax.get_pipeline("zero")(mod)
    extracted = [t for t in ms.relax_integration.extract_tasks(mod, target)
                 if not t.mod.attrs.get("tirx.is_scheduled", False)]
    db_files = TuningDatabase(Path(payload["database"]))
    stats = db_files.workload_stats()
    exhausted = db_files.exhausted()
    hashes = [str(tvm_ffi.structural_hash(t.dispatched[0])) for t in extracted]
    before = [stats.get(h, WorkloadStats(0, None)) for h in hashes]

    # plan: the budget buys T trials per task (of all tasks, done or not)
    spt = float(payload["seconds_per_trial"])
    n_tasks = max(1, len(extracted))
    fixed = bool(payload["trials_per_task"])
    if fixed:
        per_task = int(payload["trials_per_task"])
    elif payload.get("previous_trials_per_task"):  # resume the plan of an interrupted run
        per_task = int(payload["previous_trials_per_task"])
    else:
        per_task = int(max(0.0, deadline - time.time()) / spt / n_tasks)
        per_task = max(1, min(MAX_TRIALS_PER_TASK, per_task))
    records = [b.records for b in before]
    remaining = [0 if (h in exhausted) else max(0, per_task - r) for h, r in zip(hashes, records)]
    plan = [{"name": t.task_name, "weight": int(t.weight), "before": b.records,
             "best_s": b.best_s, "skip": r == 0} for t, b, r in zip(extracted, before, remaining)]
    report({"event": "plan", "stage": "plan", "tasks": plan, "trials_per_task": per_task,
            "trials_planned": sum(remaining)})

    outcomes = [dict(name=t.task_name, workload=h, weight=int(t.weight), records_before=b.records,
                     target_trials=per_task, trials_run=0,
                     best_us=None if b.best_s is None else b.best_s * 1e6,
                     skipped=True, exhausted=h in exhausted)
                for t, h, b in zip(extracted, hashes, before)]
    state = {"trials": 0, "search_s": 0.0, "stopped": False, "index": 0, "task_trials": 0,
             "task_deadline": deadline, "cut": False, "per_task": per_task}

    def save_plan() -> None:
        spent = float(payload["spent_before_s"]) + (time.time() - t_start)
        atomic_write_text(Path(payload["plan_path"]), json.dumps(
            {"budget_s": payload["budget_s"], "spent_s": spent,
             "trials_per_task": state["per_task"], "updated": _now_utc()}, indent=1) + "\n")

    if any(remaining) or not fixed:
        database = ms.database.JSONDatabase(work_dir=payload["database"],
                                            module_equality="structural")
        cores = int(payload["cores"])
        tools: dict = {}

        def tuning_tools():
            if not tools:  # started on first use: a run with nothing to do starts no pools
                tools["builder"] = _persistent_builder(max_workers=max(1, cores))
                tools["runner"] = ms.runner.LocalRunner(timeout_sec=30)
                tools["cost_model"] = ms.CostModel.create("xgb", num_tuning_cores=1)
                tools["loggers"] = get_loggers_from_work_dir(
                    payload["log_dir"], [t.task_name for t in extracted])
                tools["seeds"] = fork_seed(int(payload["seed"]), n=len(extracted))
                tools["callbacks"] = [*ms.MeasureCallback.create("default"),
                                      _reporter(report, on_batch)]
            return tools

        def on_batch(n_new: int, best: float | None) -> None:
            state["trials"] += n_new
            state["task_trials"] += n_new
            i = state["index"]
            outcomes[i]["trials_run"] += n_new
            records[i] += n_new
            if best is not None:
                old = outcomes[i]["best_us"]
                outcomes[i]["best_us"] = best * 1e6 if old is None else min(old, best * 1e6)
            save_plan()
            report({"event": "trials", "stage": "tune", "index": i, "new": n_new,
                    "best_s": best})
            now = time.time()
            if now >= deadline:
                state["stopped"] = True
                raise _BudgetSpent("budget spent")
            if now >= state["task_deadline"]:  # this task used its share of the time left
                state["cut"] = True
                raise _BudgetSpent("task's share of the budget spent")

        planned_total = sum(remaining)
        for pass_no in range(1 if fixed else MAX_PASSES):
            if pass_no > 0:
                # trials were faster than calibrated: raise T with the time left (top-up pass)
                active = [i for i, h in enumerate(hashes) if not outcomes[i]["exhausted"]]
                observed = state["search_s"] / state["trials"] if state["trials"] >= 2 else spt
                extra = int(max(0.0, deadline - time.time()) / max(observed, 1e-3)
                            / max(1, len(active)))
                if not active or extra < 2:
                    break
                state["per_task"] = min(MAX_TRIALS_PER_TASK, state["per_task"] + extra)
                remaining = [0 if outcomes[i]["exhausted"] else
                             max(0, state["per_task"] - records[i]) for i in range(len(hashes))]
                planned_total = state["trials"] + sum(remaining)
                report({"event": "replan", "stage": "tune", "trials_planned": planned_total})
            todo = [i for i, r in enumerate(remaining) if r > 0]
            if not todo:
                continue
            for position, i in enumerate(todo):
                now = time.time()
                if now >= deadline:
                    state["stopped"] = True
                    break
                # Each task left gets a share of the time left, in proportion to its missing
                # trials: when trials are slower than calibrated, later tasks get fewer, not none.
                observed = state["search_s"] / state["trials"] if state["trials"] >= 8 else spt
                demand = sum(remaining[j] for j in todo[position:])
                share_s = (deadline - now) * remaining[i] / demand
                affordable = (deadline - now) / max(observed, 1e-3)
                n = remaining[i]
                if demand > affordable:
                    n = max(1, int(remaining[i] * affordable / demand))
                    planned_total -= remaining[i] - n
                state.update(index=i, task_trials=0, cut=False, task_deadline=now + share_s)
                outcomes[i]["skipped"] = False
                t = tuning_tools()
                task = extracted[i]
                population = int(min(512, max(64, 16 * n)))
                strategy = ms.search_strategy.EvolutionarySearch(
                    population_size=population, init_min_unmeasured=min(50, population // 4))
                context = ms.TuneContext(
                    mod=task.dispatched[0], target=task.target,
                    space_generator="post-order-apply", search_strategy=strategy,
                    task_name=task.task_name, logger=t["loggers"][i], rand_state=t["seeds"][i],
                    num_threads=max(1, cores)).clone()
                # a batch should fit in the task's share, so the time checks between batches bite
                per_iter = max(4, min(n, TRIALS_PER_ITER, int(share_s / max(observed, 1e-3))))
                t0 = time.time()
                try:
                    ms.tune.tune_tasks(
                        tasks=[context], task_weights=[float(task.weight)],
                        work_dir=payload["database"], max_trials_global=n,
                        max_trials_per_task=n, num_trials_per_iter=min(n, per_iter),
                        builder=t["builder"], runner=t["runner"], database=database,
                        cost_model=t["cost_model"], measure_callbacks=t["callbacks"],
                        task_scheduler="round-robin")
                except Exception:  # noqa: BLE001 - our own budget stop comes back wrapped
                    if not (state["stopped"] or state["cut"]):
                        raise
                finally:
                    state["search_s"] += time.time() - t0
                if state["stopped"]:
                    break
                if not state["cut"] and state["task_trials"] < n:  # the search space ran out
                    outcomes[i]["exhausted"] = True
                    db_files.mark_exhausted(hashes[i])
                report({"event": "trials", "stage": "tune", "index": i, "new": 0,
                        "best_s": None, "task_done": True, "planned": planned_total})
            if state["stopped"]:
                break
    save_plan()
    for outcome in outcomes:
        outcome["target_trials"] = state["per_task"]
    return {"tasks": outcomes, "trials_per_task": state["per_task"],
            "trials_run": state["trials"], "search_s": state["search_s"],
            "stopped_by_budget": state["stopped"],
            "seconds_per_trial": (state["search_s"] / state["trials"]) if state["trials"] else spt}


# --- measuring the tuned model ---------------------------------------------------------------

def measure_tuned(model, input_shapes: Mapping[str, list[int]], hardware: HardwareClass,
                  config: MeasureConfig | None = None, *, database: Path | str | None = None,
                  check_against_ort: bool = True,
                  on_stage: Callable[[str], None] | None = None) -> Measurement:
    """Compile `model` with `hardware`'s tuning database applied and measure it here, with the
    same protocol (`MeasureConfig`, warm-up, time_evaluator samples, ORT check) as
    `profiles.tvm_adapter.measure_tvm`. Raises the adapter's typed errors."""
    from profiles.onnx_prep import ensure_prepared, input_specs, model_name, save_model
    from profiles.tvm_adapter import check_runnable_here, typed_error

    config = config or MeasureConfig()
    check_runnable_here(hardware)
    model = ensure_prepared(model, input_shapes)
    name = model_name(model)
    database = Path(database) if database is not None else tuning_dir(hardware.name)
    with tempfile.TemporaryDirectory(prefix="tvm-tuned-") as tmp:
        path = save_model(model, Path(tmp) / "model.onnx")
        log_path = Path(tmp) / "child.log"
        payload = {"model_path": str(path), "inputs": input_specs(model),
                   "target": dict(hardware.tvm_target or {}), "arch": hardware.arch,
                   "database": str(database), "config": config.model_dump(),
                   "check_against_ort": check_against_ort, "ort_threads": hardware.cores}

        def on_event(event: dict) -> None:
            if on_stage is not None and event.get("event") not in (None, "child"):
                on_stage(str(event["event"]))

        try:
            result = _run_child_events("_child_measure_tuned", payload,
                                       timeout_s=config.timeout_s, log_path=log_path,
                                       on_event=on_event)
        except ChildFailure as exc:
            raise typed_error(exc, name) from exc
    if result.pop("target_note", ""):
        logger.warning("%s: target changed for this LLVM", hardware.name)
    return Measurement.model_validate(result)


def time_vm(vm, dev, args, config: MeasureConfig, report=None) -> tuple[list[float], int, float]:
    """Warm up and sample `vm["main"]` per `config`; (samples in ms, runs per sample, seconds).

    Works on a local and on an RPC device alike: warm-up runs are timed by a `time_evaluator`
    on the device (one run each), so an RPC round trip never counts."""
    started = time.perf_counter()
    vm.set_input("main", *args)
    warm = max(1, config.warmup_runs - 1)  # time_evaluator discards its first call itself
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=warm, min_repeat_ms=0)
    last_ms = timer("main").results[-1] * 1000.0
    if last_ms < 50.0:  # short: time a batch of runs lasting >= 5 ms (as `calibrate` does)
        runs = max(1, math.ceil(5.0 / max(last_ms, 1e-4)))
        probe = vm.time_evaluator("invoke_stateful", dev, number=runs, repeat=1, min_repeat_ms=0)
        last_ms = probe("main").results[-1] * 1000.0
    samples, runs = config.plan(last_ms)
    if report is not None:
        report("measure")
    timer = vm.time_evaluator("invoke_stateful", dev, number=runs, repeat=samples, min_repeat_ms=0)
    samples_ms = [t * 1000.0 for t in timer("main").results]
    return samples_ms, runs, time.perf_counter() - started


def _child_measure_tuned(payload: dict, report) -> dict:
    """In the child: compile with the database, warm up, sample, check against ORT."""
    import warnings

    _light_tensor_intrin(payload["arch"])
    config = MeasureConfig.model_validate(payload["config"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report({"event": "compile", "stage": "compile"})
        import tvm
        from tvm import relax

        from profiles.onnx_prep import random_feeds
        from profiles.tvm_adapter import target_json, to_numpy_list

        t0 = time.perf_counter()
        executable, const_bytes, storage_bytes, target, note = compile_module(
            payload["model_path"], payload["inputs"], payload["target"], payload["database"])
        compile_s = time.perf_counter() - t0
        report({"event": "measure", "stage": "measure"})
        dev = tvm.cpu()
        vm = relax.VirtualMachine(executable, dev)
        inputs = payload["inputs"]
        feeds = random_feeds(inputs, config.seed)
        args = [tvm.runtime.tensor(feeds[name], dev) for name in inputs]
        samples_ms, runs, measure_s = time_vm(vm, dev, args, config)
        diff_abs = diff_rel = None
        if payload["check_against_ort"]:
            report({"event": "check", "stage": "check"})
            from profiles.measure import output_diff
            from profiles.ort_adapter import run_onnxruntime

            reference = run_onnxruntime(payload["model_path"], feeds, payload["ort_threads"])
            diff_abs, diff_rel = output_diff(reference, to_numpy_list(vm["main"](*args)))
    result = Measurement.from_samples(
        TVM_TUNED, samples_ms,
        memory_mb=max(const_bytes + storage_bytes, 1) / 2**20, memory_method="tvm-plan",
        runs_per_sample=runs, measure_s=measure_s, compile_s=compile_s,
        target=dict(payload["target"]) if not note else target_json(target),
        max_abs_diff_vs_ort=diff_abs, max_rel_diff_vs_ort=diff_rel,
    ).model_dump()
    result["target_note"] = note
    return result


# --- rows for the profiler ---------------------------------------------------------------------

def cached_tuned_rows(pieces: Sequence, hardware: Sequence[str] | None = None,
                      config: MeasureConfig | None = None, cache=None) -> list[dict]:
    """The cached `tvm-tuned` ProfileTable rows of `pieces` (PieceSource) on `hardware` (default:
    this machine's class), as `profile_pieces` keys them; pieces never tuned give nothing.

    Matches `profiles.profiler.RowProvider` (`provider(pieces, hardware_names)`); a piece whose
    file is missing is skipped (the profiler reports it)."""
    from profiles.cache import ProfileCache
    from profiles.onnx_prep import model_digest
    from profiles.table import PIECE

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


def register_row_providers() -> None:
    """Make `profile_pieces` include cached tvm-tuned and measured-rpc rows (idempotent)."""
    from profiles import profiler
    from profiles.rpc import cached_remote_rows

    providers = getattr(profiler, "extra_row_providers", None)
    if providers is None:
        return
    for provider in (cached_tuned_rows, cached_remote_rows):
        if provider not in providers:
            providers.append(provider)


def tuning_summary(hardware: str | None = None) -> dict:
    """Records, workloads and calibration of a class's database (for the CLI and docs)."""
    hw = hardware or local_hardware().name
    db = TuningDatabase.for_hardware(hw)
    stats = db.workload_stats()
    return {"hardware": hw, "database": str(db.directory), "records": db.record_count(),
            "workloads": len(stats), "seconds_per_trial": db.seconds_per_trial()}

