"""`placement profiles`: the rows in the profile store — list them, export them, import a CSV.

    placement profiles list [--piece P] [--hardware H] [--source S] [--runtime R] [--json]
    placement profiles export rows.csv [same filters]
    placement profiles import rows.csv

The store (`profiles/store.py`) holds every row measured on this machine and every row imported;
CSV columns are exactly the ProfileTable's (`profiles/table.py`). Imported rows get
source=imported. A bad CSV is one line on stderr naming the file, row and column, and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

profiles_app = typer.Typer(help="The profile store: list, export or import ProfileTable rows.",
                           no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole rows

EXIT_INPUT = 2


def _store():
    from placement import api

    return api.profile_store()


def _filters(piece, hardware, source, runtime) -> dict:
    return {"piece": piece, "hardware": hardware, "source": source, "runtime": runtime}


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_INPUT)


PIECE_OPT = typer.Option(None, "--piece", help="only this piece")
HARDWARE_OPT = typer.Option(None, "--hardware", help="only this hardware class")
SOURCE_OPT = typer.Option(None, "--source",
                          help="measured-local, measured-rpc, estimated or imported")
RUNTIME_OPT = typer.Option(None, "--runtime", help="tvm, tvm-tuned or onnxruntime")


@profiles_app.command("list")
def list_rows(
    piece: Optional[str] = PIECE_OPT,
    hardware: Optional[str] = HARDWARE_OPT,
    source: Optional[str] = SOURCE_OPT,
    runtime: Optional[str] = RUNTIME_OPT,
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON records"),
) -> None:
    """List the stored profile rows (measured here or imported)."""
    from profiles import table as pt

    store = _store()
    df = store.table(**_filters(piece, hardware, source, runtime))
    if as_json:
        print(df.to_json(orient="records", indent=2))
        return
    t = Table(title=f"{len(df)} profile rows in {store.path}")
    for col in ("piece", "hardware", "runtime", "batch", "p50 ms", "p95 ms", "memory MB",
                "source", "measured at", "TVM"):
        t.add_column(col)
    for r in df.to_dict("records"):
        band = r[pt.ERROR_BAND]
        src = r[pt.SOURCE] + ("" if band != band else f" ±{band:.0%}")
        t.add_row(r[pt.PIECE], r[pt.HARDWARE], r[pt.RUNTIME], str(r[pt.BATCH]),
                  f"{r[pt.LATENCY_MS_P50]:.2f}", f"{r[pt.LATENCY_MS_P95]:.2f}",
                  f"{r[pt.MEMORY_MB]:.0f}", src, str(r[pt.MEASURED_AT] or ""),
                  str(r[pt.TVM_VERSION] or ""))
    out.print(t)


@profiles_app.command("export")
def export_rows(
    csv_path: Path = typer.Argument(..., metavar="CSV", help="file to write"),
    piece: Optional[str] = PIECE_OPT,
    hardware: Optional[str] = HARDWARE_OPT,
    source: Optional[str] = SOURCE_OPT,
    runtime: Optional[str] = RUNTIME_OPT,
) -> None:
    """Write the stored rows as a ProfileTable CSV (the columns `placement plan --profiles` reads)."""
    n = _store().export_csv(csv_path, **_filters(piece, hardware, source, runtime))
    print(f"wrote {n} rows to {csv_path}", file=sys.stderr)


@profiles_app.command("import")
def import_rows(csv_path: Path = typer.Argument(..., metavar="CSV", help="ProfileTable CSV")) -> None:
    """Add a ProfileTable CSV's rows to the store (source=imported; same piece, hardware,
    runtime and batch replace an earlier import)."""
    from profiles.table import ProfileTableError

    try:
        df = _store().import_csv(csv_path)
    except ProfileTableError as exc:
        _fail(str(exc))
    print(f"imported {len(df)} rows from {csv_path}", file=sys.stderr)
