"""`placement prices`: list the offers the planner can buy, and refresh them from the clouds."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

prices_app = typer.Typer(help="List offers with their prices and price date; refresh them.")
out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole rows
err = Console(stderr=True)


def _warn(lines) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


@prices_app.callback(invoke_without_command=True)
def prices(
    ctx: typer.Context,
    provider: Optional[str] = typer.Option(None, "--provider", help="aws, azure or edge"),
    region: Optional[str] = typer.Option(None, "--region"),
    gpu: bool = typer.Option(False, "--gpu", help="only offers with a GPU"),
    max_hourly: Optional[float] = typer.Option(None, "--max-hourly", help="on-demand USD/hour at most"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers", help="an OfferTable CSV instead of cache + snapshot"),
    max_age_days: Optional[int] = typer.Option(None, "--max-age-days", help="warn about prices older than this"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the offers the planner can buy (fetched prices over the snapshot), with their price date."""
    if ctx.invoked_subcommand is not None:
        return
    from placement import api
    from pricing import table as ot

    sel, warnings = api.list_offers(offers_csv, max_age_days=max_age_days,
                                    providers=[provider] if provider else None,
                                    regions=[region] if region else None, gpu=True if gpu else None,
                                    max_hourly=max_hourly)
    _warn(warnings)
    if as_json:
        print(sel.to_json(orient="records", indent=2))
        return
    dates = sorted(set(map(str, sel[ot.PRICE_DATE])))
    t = Table(title=f"{len(sel)} offers (prices as of {', '.join(dates)})")
    for col in ("offer", "hardware", "vCPU", "GiB", "accelerator", "on-demand $/h", "spot $/h",
                "1y RI $/h", "3y RI $/h", "unit $", "W", "price date"):
        t.add_column(col)

    def fmt(v, digits=4):
        return "—" if v is None or v != v else f"{v:.{digits}f}"

    for _, r in sel.iterrows():
        acc = "" if r[ot.ACCELERATOR] is None or r[ot.ACCELERATOR] != r[ot.ACCELERATOR] else (
            f"{int(r[ot.ACCELERATOR_COUNT])}x {r[ot.ACCELERATOR]}")
        t.add_row(r[ot.OFFER], r[ot.HARDWARE], fmt(r[ot.VCPUS], 0), fmt(r[ot.MEMORY_GIB], 1), acc,
                  fmt(r[ot.HOURLY_USD]), fmt(r[ot.SPOT_HOURLY_USD]), fmt(r[ot.RESERVED_1Y_HOURLY_USD]),
                  fmt(r[ot.RESERVED_3Y_HOURLY_USD]), fmt(r[ot.UNIT_USD], 0), fmt(r[ot.POWER_W], 1),
                  str(r[ot.PRICE_DATE]))
    out.print(t)


@contextmanager
def _status_line(enabled: bool):
    """One rich progress line on stderr, fed by the fetchers' status messages."""
    if not enabled:
        yield lambda _msg: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda msg: bar.update(task, description=msg)


@prices_app.command("refresh")
def refresh(
    provider: str = typer.Option(..., "--provider", help="aws or azure"),
    regions: list[str] = typer.Option(..., "--region", help="a region (repeat for more)"),
    instance_types: Optional[list[str]] = typer.Option(
        None, "--instance-type", help="only these (repeat); default: the types the snapshot knows"),
    max_age_days: Optional[float] = typer.Option(
        None, "--max-age-days", help="skip regions fetched less than this many days ago"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress line"),
) -> None:
    """Fetch current prices from the provider's APIs into the local catalog cache.

    AWS: credentials from the default chain (env, ~/.aws, SSO, instance role).
    Azure: prices are public; specs need AZURE_SUBSCRIPTION_ID and a credential, else the snapshot's.
    On failure the previous prices stay in use and the command exits with 2.
    """
    from placement import api
    from pricing.fetch import PriceFetchError

    failures = []
    with _status_line(not quiet and err.is_terminal) as on_progress:
        for region in regions:
            on_progress(f"{provider} {region}: starting")
            result = api.refresh_prices(provider, region, instance_types=instance_types or None,
                                        max_age_days=max_age_days, on_progress=on_progress)
            _warn(result.warnings if result.ok else result.warnings[1:])
            if result.status == "fetched":
                out.print(f"{provider} {region}: {result.rows} offers fetched {result.fetched_at} "
                          f"-> {result.path}", highlight=False)
            elif result.status == "fresh":
                out.print(f"{provider} {region}: fresh ({result.rows} offers fetched "
                          f"{result.fetched_at}), not fetched again", highlight=False)
            else:
                failures.append(result.warnings[0] if result.warnings else result.error)
    if failures:
        more = f" (and {len(failures) - 1} more region(s) failed)" if len(failures) > 1 else ""
        raise PriceFetchError(f"{failures[0]}{more}")
