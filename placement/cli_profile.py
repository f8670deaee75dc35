"""`placement profile` (and tuning): measure pieces here or on remote devices."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app (called by placement.cli)."""
    app.command()(profile)


def profile(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the ProfileTable as CSV"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers", help="OfferTable CSV instead of the snapshot"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure every model here (TVM and ONNX Runtime, cached) and estimate it on candidate hardware."""
    from placement.cli import _load, _offers, _profiles_for, out

    spec, base_dir = _load(spec_path)
    offers = _offers(offers_csv)
    table, _ = _profiles_for(spec, base_dir, offers, None, not as_json)
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
