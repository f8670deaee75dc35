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
    from placement import api
    from placement.cli_shell import err, out
    from placement.cli_shell import profile as _profile
    from placement.cli_shell import warn as _warn
    from placement.cli_shell import workspace as _workspace

    ws = _workspace(spec_path, offers_csv=offers_csv, batches=batches)
    if tracker or remote_config:
        from placement.jobs import remote_config as check_remote

        check_remote(remote_config, tracker)  # before minutes of local profiling
    _profile(ws, not as_json)
    if tracker or remote_config:
        with _remote_progress(not as_json, err) as on_progress:
            _warn(ws.profile_remote(tracker, remote_config, on_progress))
    table = ws.profiles
    spec = ws.spec
    if output:
        api.write_text(output, table.to_csv(index=False))
    if as_json:
        print(table.to_json(orient="records", indent=2))
        return
    from placement.rows import source_label
    from profiles import table as pt

    t = Table(title=f"profiles of {spec.name}")
    for col in ("piece", "hardware", "runtime", "p50 ms", "p95 ms", "memory MB", "source"):
        t.add_column(col)
    for _, r in table.sort_values([pt.PIECE, pt.SOURCE, pt.HARDWARE, pt.RUNTIME]).iterrows():
        band = r[pt.ERROR_BAND]
        src = source_label(r[pt.SOURCE], None if band != band else band)
        t.add_row(r[pt.PIECE], r[pt.HARDWARE], r[pt.RUNTIME], f"{r[pt.LATENCY_MS_P50]:.2f}",
                  f"{r[pt.LATENCY_MS_P95]:.2f}", f"{r[pt.MEMORY_MB]:.0f}", src)
    out.print(t)


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

    from placement.cli_shell import err, out
    from placement.cli_shell import warn as _warn
    from placement.cli_shell import workspace as _workspace

    ws = _workspace(spec_path)
    started = time.monotonic()
    with _tune_progress(not as_json, err) as on_progress:
        outcome = ws.tune(budget=budget, hardware=hardware, pieces=piece, trials_per_task=trials_per_task,
                          progress=on_progress)
    _warn(f"{name}: not tuned: {message}" for name, message in outcome.failed)
    for note in outcome.notes():
        print(f"note: {note}", file=sys.stderr)
    results, failed, budget_s, spec = outcome.results, outcome.failed, outcome.budget_s, ws.spec
    if as_json:
        import json

        print(json.dumps([_result_json(r) for r in results], indent=2, default=str))
    elif results:
        out.print(_result_table(spec.name, results, budget_s, time.monotonic() - started))
    if failed and not results:
        raise typer.Exit(1)


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
    from placement.jobs import untuned_row

    return None if result.source is None else untuned_row(result.source, result.hardware)


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
