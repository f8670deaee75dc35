"""What every `placement` command shares: the consoles, warnings, opening a spec's Workspace
and profiling it with a progress bar. Kept apart from `placement.cli` so the command modules
(`cli_profile`, ...) import it without an import circle."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole rows
err = Console(stderr=True)


@contextmanager
def progress(enabled: bool):
    """A rich progress bar fed by the profiler's events; silent when a machine reads stdout."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task("profiling", total=None)

        def on_progress(event):
            bar.update(task, total=event.total, completed=event.done,
                       description=f"profiling {event.piece} ({event.runtime}: {event.step})")

        yield on_progress


def warn(lines) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def workspace(spec_path: Path, *, offers_csv: Optional[Path] = None, profiles_csv: Optional[Path] = None,
               batches: Optional[str] = None):
    """The Workspace of a spec file; cache problems are warnings on stderr, never fatal."""
    from placement import api

    ws = api.Workspace.open(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv,
                            batches=api.parse_batches(batches))
    warn(ws.warnings)
    return ws


def profile(ws, show_progress: bool) -> None:
    """Profile now (with a progress bar) unless the profiles came from a CSV."""
    if ws.profiles_table is not None:
        return
    with progress(show_progress) as on_progress:
        ws.profile(on_progress)
    warn(ws.profile_problems)
