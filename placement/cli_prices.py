"""`placement prices`: list the offers the planner can buy (and, later, refresh them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

prices_app = typer.Typer(help="List offers with their prices and price date.")
out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole rows


@prices_app.callback(invoke_without_command=True)
def prices(
    ctx: typer.Context,
    provider: Optional[str] = typer.Option(None, "--provider", help="aws, azure or edge"),
    region: Optional[str] = typer.Option(None, "--region"),
    gpu: bool = typer.Option(False, "--gpu", help="only offers with a GPU"),
    max_hourly: Optional[float] = typer.Option(None, "--max-hourly", help="on-demand USD/hour at most"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the offers the planner can buy, with their prices and the price date."""
    if ctx.invoked_subcommand is not None:
        return
    from placement import api
    from pricing import table as ot
    from pricing.query import select_offers

    offers = api.load_offers(offers_csv)
    sel = select_offers(offers, providers=[provider] if provider else None,
                        regions=[region] if region else None, gpu=True if gpu else None,
                        max_hourly=max_hourly)
    if sel.empty:
        raise api.InputError("prices: no offers match these filters")
    if as_json:
        print(sel.to_json(orient="records", indent=2))
        return
    dates = ", ".join(sorted(set(map(str, sel[ot.PRICE_DATE]))))
    t = Table(title=f"{len(sel)} offers (prices as of {dates})")
    for col in ("offer", "hardware", "vCPU", "GiB", "accelerator", "on-demand $/h", "spot $/h",
                "1y RI $/h", "3y RI $/h", "unit $", "W"):
        t.add_column(col)

    def fmt(v, digits=4):
        return "—" if v is None or v != v else f"{v:.{digits}f}"

    for _, r in sel.iterrows():
        acc = "" if r[ot.ACCELERATOR] is None or r[ot.ACCELERATOR] != r[ot.ACCELERATOR] else (
            f"{int(r[ot.ACCELERATOR_COUNT])}x {r[ot.ACCELERATOR]}")
        t.add_row(r[ot.OFFER], r[ot.HARDWARE], fmt(r[ot.VCPUS], 0), fmt(r[ot.MEMORY_GIB], 1), acc,
                  fmt(r[ot.HOURLY_USD]), fmt(r[ot.SPOT_HOURLY_USD]), fmt(r[ot.RESERVED_1Y_HOURLY_USD]),
                  fmt(r[ot.RESERVED_3Y_HOURLY_USD]), fmt(r[ot.UNIT_USD], 0), fmt(r[ot.POWER_W], 1))
    out.print(t)
