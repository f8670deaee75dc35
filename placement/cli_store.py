"""`placement profiles`: the rows in the profile store — list them, export them, import a CSV.

    placement profiles list [--piece P] [--hardware H] [--source S] [--runtime R] [--json]
    placement profiles export rows.csv [same filters]
    placement profiles import rows.csv [--spec SPEC]

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
                           no_args_is_help=True, rich_markup_mode=None)
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
                          help="measured-local, measured-rpc, measured-served, estimated or imported")
RUNTIME_OPT = typer.Option(None, "--runtime", help="tvm, tvm-tuned, onnxruntime, openvino, onnxruntime-cuda or onnxruntime-trt")


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
    from profiles.store import MODEL, OTHERS_CPU_SHARE, SERVED_LOAD

    store = _store()
    df = store.listing(**_filters(piece, hardware, source, runtime))
    if as_json:
        print(df.to_json(orient="records", indent=2))
        return
    t = Table(title=f"{len(df)} profile rows in {store.path}")
    for col in ("piece", "model", "hardware", "runtime", "batch", "p50 ms", "p95 ms", "memory MB",
                "source", "machine busy", "measured at", "TVM"):
        t.add_column(col)
    for r in df.to_dict("records"):
        band = r[pt.ERROR_BAND]
        src = r[pt.SOURCE] if band != band or band is None else f"{r[pt.SOURCE]} ×/÷{1 + band:.2f}"
        busy = r[OTHERS_CPU_SHARE]
        t.add_row(r[pt.PIECE], r[MODEL] or "(any)", r[pt.HARDWARE], r[pt.RUNTIME], str(r[pt.BATCH]),
                  f"{r[pt.LATENCY_MS_P50]:.2f}", f"{r[pt.LATENCY_MS_P95]:.2f}",
                  f"{r[pt.MEMORY_MB]:.0f}", src, "" if busy != busy or busy is None else f"{busy:.0%}",
                  str(r[pt.MEASURED_AT] or ""), str(r[pt.TVM_VERSION] or ""))
    out.print(t)
    for r in df.to_dict("records"):
        if r[SERVED_LOAD]:
            out.print(f"{r[pt.PIECE]} ({r[pt.RUNTIME]}, batch {r[pt.BATCH]}, {r[pt.HARDWARE]}) measured-served: "
                      f"{r[SERVED_LOAD]}", markup=False, highlight=False)
    out.print("model: the first 12 hex digits of the ONNX file's sha256 ((any): an imported row for "
              "every model with that piece name); machine busy: the CPU share other processes used "
              "while it was measured (20% or more: contended)", markup=False, highlight=False)


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
def import_rows(
    csv_path: Path = typer.Argument(..., metavar="CSV", help="ProfileTable CSV"),
    spec: Optional[Path] = typer.Option(
        None, "--spec", help="bind each row to the model of the spec whose piece it names "
        "(by the ONNX file's hash); without it a row applies to every model with that piece name"),
) -> None:
    """Add a ProfileTable CSV's rows to the store (source=imported; same piece, hardware,
    runtime, batch and model replace an earlier import). `placement plan` uses them: a row
    measured here wins over an imported one, an imported one over an estimate."""
    from profiles.table import ProfileTableError

    models = _spec_models(spec) if spec else None
    try:
        df = _store().import_csv(csv_path, models=models)
    except ProfileTableError as exc:
        _fail(str(exc))
    print(f"imported {len(df)} rows from {csv_path}", file=sys.stderr)


def _spec_models(spec: Path) -> dict[str, str]:
    """piece -> sha256 of its ONNX file, for every piece of the spec (heads and tails too)."""
    from placement import api
    from profiles.onnx_prep import model_digest

    ws = api.Workspace.open(spec)
    return {source.piece: model_digest(source.onnx_path) for source in ws.pieces}
