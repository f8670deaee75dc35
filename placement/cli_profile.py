"""`placement profile` and `placement tune`: measure pieces here or on remote devices, tune them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app (called by placement.cli)."""
    app.command()(profile)
    app.command()(tune)


def profile(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the ProfileTable as CSV"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers", help="OfferTable CSV instead of the snapshot"),
    batches: Optional[str] = typer.Option(None, "--batches", help="sweep batch sizes, e.g. 1,2,4,8"),
    tracker: Optional[str] = typer.Option(
        None, "--tracker", help="HOST:PORT of a TVM RPC tracker: also measure on its devices"),
    remote_config: Optional[Path] = typer.Option(
        None, "--remote-config", help="YAML mapping tracker keys to hardware classes"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure every model here (TVM and ONNX Runtime, cached) and estimate it on candidate hardware.

    With --tracker, every device of the tracker that the remote config maps to a hardware class
    also measures every model (rows with source measured-rpc, cached as they finish)."""
    from placement.cli import _load, _offers, _profiles_for, out, parse_batches

    spec, base_dir = _load(spec_path)
    offers = _offers(offers_csv)
    config = _remote_config(remote_config) if (tracker or remote_config) else None
    tracker = tracker or (config.tracker if config is not None else None)
    if remote_config is not None and not tracker:
        from placement.api import InputError

        raise InputError(f"{remote_config}: no tracker: pass --tracker HOST:PORT or set `tracker:`")
    if tracker:
        _check_tracker(tracker)  # before minutes of local profiling
    table, _ = _profiles_for(spec, base_dir, offers, None, not as_json, parse_batches(batches))
    table = _with_cached_rows(table, spec, base_dir)
    if tracker:
        table = _with_remote_rows(table, spec, base_dir, tracker, config, not as_json)
    if output:
        from profiles.paths import atomic_write_text

        atomic_write_text(output, table.to_csv(index=False))
    if as_json:
        print(table.to_json(orient="records", indent=2))
        return
    from profiles import table as pt

    t = Table(title=f"profiles of {spec.name}")
    for col in ("piece", "hardware", "runtime", "p50 ms", "p95 ms", "memory MB", "source"):
        t.add_column(col)
    for _, r in table.sort_values([pt.PIECE, pt.SOURCE, pt.HARDWARE, pt.RUNTIME]).iterrows():
        src = r[pt.SOURCE] + (f" ±{r[pt.ERROR_BAND]:.0%}" if r[pt.SOURCE] == "estimated" else "")
        t.add_row(r[pt.PIECE], r[pt.HARDWARE], r[pt.RUNTIME], f"{r[pt.LATENCY_MS_P50]:.2f}",
                  f"{r[pt.LATENCY_MS_P95]:.2f}", f"{r[pt.MEMORY_MB]:.0f}", src)
    out.print(t)


def _check_tracker(tracker: str) -> None:
    from placement.api import InputError
    from profiles.remote import RemoteConfigError
    from profiles.rpc import RpcError, tracker_status

    try:
        tracker_status(tracker)
    except (RpcError, RemoteConfigError) as exc:
        raise InputError(str(exc)) from None


def _remote_config(path: Optional[Path]):
    from placement.api import InputError
    from profiles.remote import RemoteConfig, RemoteConfigError, load_remote_config

    try:
        return load_remote_config(path) if path is not None else RemoteConfig()
    except RemoteConfigError as exc:
        raise InputError(str(exc)) from None


def _with_cached_rows(table, spec, base_dir):
    """Add cached tvm-tuned / measured-rpc rows when the profiler did not already (idempotent)."""
    from placement import api
    from profiles.rpc import cached_remote_rows, merge_measured_rows
    from profiles.tuning import cached_tuned_rows

    pieces = api.piece_sources(spec, base_dir)
    hardware = sorted(set(table["hardware"])) if len(table) else None
    rows = cached_tuned_rows(pieces, hardware) + cached_remote_rows(pieces, hardware)
    return merge_measured_rows(table, rows) if rows else table


def _with_remote_rows(table, spec, base_dir, tracker: str, config, show_progress: bool):
    from placement import api
    from placement.api import InputError
    from placement.cli import err
    from profiles.remote import RemoteConfigError
    from profiles.rpc import RpcError, measure_remote, merge_measured_rows

    pieces = api.piece_sources(spec, base_dir)
    with _remote_progress(show_progress, err) as on_progress:
        try:
            report = measure_remote(pieces, tracker, config, on_progress=on_progress)
        except (RpcError, RemoteConfigError) as exc:
            raise InputError(str(exc)) from None
    for problem in report.problems:
        print(f"warning: {problem.piece} on {problem.hardware} ({problem.runtime}): "
              f"{problem.error_type}: {problem.message}", file=sys.stderr)
    if not report.devices and not len(report.table):
        print(f"warning: no device of the tracker at {tracker} is mapped to a hardware class "
              "(see --remote-config)", file=sys.stderr)
    return merge_measured_rows(table, report.table.to_dict("records"))


class _remote_progress:
    """A rich progress bar for `measure_remote` (its events come from worker threads)."""

    def __init__(self, enabled: bool, console):
        self.enabled, self.console = enabled, console
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                            console=self.console)
        self.bar.__enter__()
        task = self.bar.add_task("remote devices", total=None)

        def on_progress(event):
            self.bar.update(task, total=event.total, completed=event.done,
                            description=f"{event.key}: {event.piece} ({event.runtime}: {event.step})")

        return on_progress

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


def tune(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    budget: str = typer.Option("20m", "--budget", help="search time for all pieces: 90s, 20m, 1h"),
    hardware: Optional[str] = typer.Option(
        None, "--hardware", help="hardware class to tune for (default: this machine's); must run here"),
    piece: list[str] = typer.Option([], "--piece", help="tune only these pieces (repeatable)"),
    trials_per_task: Optional[int] = typer.Option(
        None, "--trials-per-task", help="fix the trials per task instead of deriving them from the budget"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Tune every model with MetaSchedule within a time budget; measure the tuned models (tvm-tuned).

    Trials are spread over all kernels of each model; the tuning database (one per hardware
    class) is shared by all models and kept between runs, so a run that is stopped resumes where
    it stopped. The budget is split equally over the pieces; a piece's share is its total search
    time on this hardware class across runs, so running the same command again only finishes
    what an interrupted run left, and a larger budget tunes further."""
    import time

    from placement import api
    from placement.api import InputError
    from placement.cli import _load, err, out
    from profiles.measure import NotMeasurableHereError
    from profiles.tuning import TuningBusyError, TuningError, parse_budget, tune_piece

    try:
        budget_s = parse_budget(budget)
    except ValueError as exc:
        raise InputError(f"--budget: {exc}") from None
    if trials_per_task is not None and trials_per_task < 1:
        raise InputError("--trials-per-task: must be at least 1")
    spec, base_dir = _load(spec_path)
    pieces = api.piece_sources(spec, base_dir)
    if piece:
        unknown = sorted(set(piece) - {p.piece for p in pieces})
        if unknown:
            raise InputError(f"--piece: unknown piece(s) {', '.join(unknown)}; "
                             f"known: {', '.join(p.piece for p in pieces)}")
        pieces = [p for p in pieces if p.piece in piece]
    if hardware is not None:
        from profiles.hardware import hardware_catalog

        if hardware not in hardware_catalog():
            raise InputError(f"--hardware: unknown hardware class {hardware!r}")

    results, failed = [], []
    started = time.monotonic()
    share = budget_s / max(1, len(pieces))  # fixed shares: a re-run resumes each piece's plan
    with _tune_progress(not as_json, err) as on_progress:
        for source in pieces:
            try:
                results.append(tune_piece(source, hardware, share, trials_per_task=trials_per_task,
                                          on_progress=on_progress))
            except NotMeasurableHereError as exc:
                raise InputError(f"--hardware: {exc} (tuning runs trials on this machine)") from None
            except TuningBusyError as exc:
                raise InputError(str(exc)) from None
            except TuningError as exc:
                failed.append((source.piece, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a TVM error on one piece: go on with the rest
                from profiles.tvm_adapter import TvmError

                if not isinstance(exc, TvmError):
                    raise
                failed.append((source.piece, str(exc)))
    for name, message in failed:
        print(f"warning: {name}: not tuned: {message}", file=sys.stderr)
    for r in results:
        if r.trials_run == 0 and r.spent_before_s >= r.budget_s - 1:
            print(f"note: {r.piece}: its budget on {r.hardware} was spent by earlier runs "
                  f"({r.spent_before_s:.0f} s of {r.budget_s:.0f} s); give a larger --budget "
                  "to tune further", file=sys.stderr)
    if as_json:
        import json

        print(json.dumps([_result_json(r) for r in results], indent=2, default=str))
    elif results:
        out.print(_result_table(spec.name, results, budget_s, time.monotonic() - started))
    if failed and not results:
        raise typer.Exit(1)


def _untuned_row(source, hardware: str):
    """The cached untuned TVM row of a piece on `hardware`, if profiled with default settings."""
    from profiles.cache import ProfileCache, profile_key
    from profiles.measure import MeasureConfig
    from profiles.onnx_prep import model_digest
    from profiles.rows import batch_of as _batch
    from profiles.rows import profile_extra as _profile_extra
    from profiles.tvm_adapter import tvm_version as _tvm_version

    key = profile_key(model_digest(source.onnx_path), source.input_shapes, hardware, "tvm",
                      _batch(source.input_shapes), _tvm_version(), MeasureConfig(), _profile_extra())
    entry = ProfileCache().get(key)
    return entry.get("row") if isinstance(entry, dict) else None


def _result_json(r) -> dict:
    return {"piece": r.piece, "hardware": r.hardware, "database": str(r.database),
            "budget_s": r.budget_s, "trials_per_task": r.trials_per_task,
            "tasks": len(r.tasks), "tasks_skipped": r.tasks_skipped, "trials_run": r.trials_run,
            "search_s": r.search_s, "stopped_by_budget": r.stopped_by_budget, "row": r.row}


def _result_table(name: str, results, budget_s: float, spent_s: float) -> Table:
    from profiles.tuning import format_duration

    t = Table(title=f"{name}: tuned within {format_duration(budget_s)} "
                    f"(took {format_duration(spent_s)})")
    for col, justify in (("piece", "left"), ("hardware", "left"), ("tasks", "right"),
                         ("skipped", "right"), ("trials", "right"), ("search", "right"),
                         ("tvm p50 ms", "right"), ("tvm-tuned p50 ms", "right"),
                         ("p95 ms", "right"), ("speed-up", "right")):
        t.add_column(col, justify=justify)
    for r in results:
        untuned = _untuned_row_safe(r)
        tuned_p50 = r.row["latency_ms_p50"] if r.row else None
        t.add_row(
            r.piece, r.hardware, str(len(r.tasks)), str(r.tasks_skipped), str(r.trials_run),
            format_duration(r.search_s) + (" (budget)" if r.stopped_by_budget else ""),
            "—" if untuned is None else _ms(untuned["latency_ms_p50"]),
            "—" if tuned_p50 is None else _ms(tuned_p50),
            "—" if not r.row else _ms(r.row["latency_ms_p95"]),
            "—" if untuned is None or not tuned_p50 else f"{untuned['latency_ms_p50'] / tuned_p50:.1f}x",
        )
    return t


def _ms(value: float) -> str:
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def _untuned_row_safe(result):
    if result.source is None:
        return None
    try:
        return _untuned_row(result.source, result.hardware)
    except (OSError, ValueError):
        return None


class _tune_progress:
    """A rich progress bar per piece: trials done/planned, tasks done, best estimate, time left."""

    def __init__(self, enabled: bool, console):
        self.enabled, self.console = enabled, console
        self.bar = None
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.fields[trials]}"),
            TextColumn("{task.fields[tasks]}"), TextColumn("{task.fields[best]}"),
            TextColumn("{task.fields[left]}"), console=self.console)
        self.bar.__enter__()
        return self.on_progress

    def on_progress(self, p) -> None:
        from profiles.tuning import format_duration

        if p.piece not in self.tasks:
            self.tasks[p.piece] = self.bar.add_task(
                f"tune {p.piece}", total=None, trials="", tasks="", best="", left="")
        task = self.tasks[p.piece]
        best = (f"est. {p.estimated_ms:.2f} ms ({p.tasks_with_estimate}/{p.tasks_total} kernels)"
                if p.estimated_ms is not None else "")
        fields = {"tasks": f"tasks {p.tasks_done}/{p.tasks_total}" if p.tasks_total else "",
                  "best": best,
                  "trials": f"{p.trials_done}/{p.trials_planned} trials" if p.trials_planned else ""}
        if p.phase in ("compile", "measure", "check", "done"):
            fields["left"] = {"done": "done"}.get(p.phase, f"{p.phase} tuned model")
        elif p.phase == "stopped":
            fields["left"] = "budget spent"
        else:
            fields["left"] = f"{format_duration(p.time_left_s)} left"
        update = dict(description=f"tune {p.piece}" + (f": {p.task}" if p.task else ""), **fields)
        if p.trials_planned or p.phase == "done":
            update.update(total=max(p.trials_planned, p.trials_done, 1),
                          completed=p.trials_done if p.trials_planned else 1)
        self.bar.update(task, **update)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
