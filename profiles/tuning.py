"""Budgeted MetaSchedule tuning (`tvm-tuned`), one tuning database per hardware class.

`tune_piece(source, hardware, budget_s)` is the entry point (`placement tune` calls it once per
piece with its share of the budget):

1. **Database** (`profiles.tuning_db`). One MetaSchedule JSON database per hardware class and
   TVM version, shared by every model tuned for that class, appended trial by trial (a killed
   run loses no finished trial), repaired before each run, locked while a run uses it.
2. **Budget -> trials** (`profiles.tuning_budget`). The budget is the search time for this model
   on this class in total over all runs (a per-model plan, `runs/<piece>-<hash>/plan.json`,
   records what was spent). What is left buys `T` trials per task (`trials_per_task` overrides
   it); seconds per trial is calibrated per database from earlier runs (1.5 s until measured).
   A task that already holds `T` records is skipped, so a re-run only does what is missing and a
   larger budget tunes further.
3. **Child process** (`profiles.tuning_search`, run by `profiles.child.run_in_child`). The
   search runs in a spawned child (MetaSchedule crashes and hangs stay there); its events
   become `TuneProgress` (`profiles.tuning_progress`). This layer prints nothing.
4. **Measure** (`profiles.tuning_measure`). The tuned model is compiled with the database
   applied and measured with the same `MeasureConfig` protocol, in another child. The row
   (runtime `tvm-tuned`, `measured-local`) goes to the `ProfileCache` under
   `tuned_profile_key(...)`; `cached_tuned_rows` (`profiles.tuned_rows`) gives it back to the
   profiler when passed among its `row_providers` (see `default_row_providers`).

The names callers use stay importable from here.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from profiles.cache import ProfileCache
from profiles.child import ChildFailure, run_in_child
from profiles.hardware import HardwareClass, get_hardware, local_hardware
from profiles.measure import MeasureConfig, Measurement
from profiles.onnx_prep import input_specs, prepare_onnx, save_model
from profiles.providers import default_row_providers
from profiles.rows import MEASURED_LOCAL, TVM_TUNED, batch_of, measured_row
from profiles.tuned_rows import cached_tuned_rows, tuned_profile_key
from profiles.tuning_budget import (
    DEFAULT_SECONDS_PER_TRIAL,
    STOP_GRACE_S,
    format_duration,
    parse_budget,
)
from profiles.tuning_db import PLAN_FILE, TuningDatabase, read_plan, run_name, tuning_dir
from profiles.tuning_measure import measure_tuned
from profiles.tuning_progress import ProgressTracker, TuneProgress
from profiles.tvm_adapter import check_runnable_here, tvm_version
from profiles.tvm_compile import compile_module, time_vm

__all__ = [
    "TVM_TUNED", "TaskOutcome", "TuneProgress", "TuneResult", "TuningBusyError", "TuningDatabase",
    "TuningError", "cached_tuned_rows", "compile_module", "default_row_providers",
    "format_duration", "measure_tuned", "parse_budget", "resolve_tuning_hardware", "time_vm",
    "tune_piece", "tuned_profile_key", "tuning_dir", "tuning_summary",
]


class TuningError(RuntimeError):
    """Tuning failed: the child crashed, was killed, or TVM raised. Finished trials are kept."""


class TuningBusyError(TuningError):
    """Another tuning run holds this hardware class's database."""


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


def resolve_tuning_hardware(hardware: HardwareClass | str | None) -> HardwareClass:
    """The class to tune for (default: this machine's); it must be runnable on this CPU."""
    hw = local_hardware() if hardware is None else (
        hardware if isinstance(hardware, HardwareClass) else get_hardware(hardware))
    check_runnable_here(hw)
    return hw


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
        run_dir = db.directory / "runs" / run_name(piece, prepared, source.input_shapes)
        run_dir.mkdir(parents=True, exist_ok=True)
        plan = read_plan(run_dir)
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
            tracker = ProgressTracker(emit)
            log_path = run_dir / "child.log"
            log_path.write_text("")  # one run's log, not every run's
            try:
                outcome = run_in_child(
                    "profiles.tuning_search", "child_tune", payload,
                    timeout_s=budget_left + STOP_GRACE_S, log_path=log_path,
                    on_event=tracker.on_event)
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
        row = measured_row(piece, hw.name, TVM_TUNED, batch_of(source.input_shapes),
                           measurement, source=MEASURED_LOCAL, tvm_version=tvm_version())
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


def tuning_summary(hardware: str | None = None) -> dict:
    """Records, workloads and calibration of a class's database (for the CLI and docs)."""
    hw = hardware or local_hardware().name
    db = TuningDatabase.for_hardware(hw)
    stats = db.workload_stats()
    return {"hardware": hw, "database": str(db.directory), "records": db.record_count(),
            "workloads": len(stats), "seconds_per_trial": db.seconds_per_trial()}
