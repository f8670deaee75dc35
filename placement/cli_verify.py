"""`placement verify`: run a plan on this machine under load and print predicted against
measured (docs/verify.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add `verify` to the main app (called by placement.cli)."""
    app.command()(verify)


def verify(
    spec_path: Optional[Path] = typer.Argument(None, metavar="SPEC", help="the application spec"),
    plan_path: Optional[Path] = typer.Option(None, "--plan", help="plan.json to run (default: plan now)"),
    duration: float = typer.Option(60.0, "--duration", min=0.5, help="seconds of arrivals"),
    as_json: bool = typer.Option(False, "--json", help="the comparison as JSON on stdout"),
    headroom: float = typer.Option(0.5, "--headroom", min=0.05, max=1.0,
                                   help="share of this machine's cores the plan's load is scaled to"),
    threads: int = typer.Option(1, "--threads", min=1, help="ONNX Runtime intra-op threads per worker"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers"),
    store_profiles: bool = typer.Option(
        False, "--store-profiles", help="store each piece's compute as this run served it in the profile "
        "store (source measured-served, with the load it served under); later plans of these models use "
        "those rows before the ones measured alone"),
    this_machine: Optional[Path] = typer.Option(
        None, "--write-offers", help="write an offers CSV naming this machine (edge device and cloud "
        "offer `this-machine`) to PATH and exit; set its prices, then plan with --offers PATH"),
) -> None:
    """Run the plan's pieces here, each in its worker process(es), with real tensors along the
    dataflow, links delayed by bandwidth and one-way delay, arrivals as the spec states (scaled to
    this machine); print per piece and end to end predicted against measured."""
    from profiles.errors import UserError

    try:
        code = _verify(spec_path, plan_path, duration, as_json, headroom, threads, profiles_csv, offers_csv,
                       this_machine, store_profiles)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print("interrupted: every worker stopped", file=sys.stderr)
        raise typer.Exit(130) from None
    if code:
        raise typer.Exit(code)


def _verify(spec_path, plan_path, duration, as_json, headroom, threads, profiles_csv, offers_csv,
            this_machine, store_profiles=False) -> int:
    from placement import api
    from placement.verify import VerifyError, verify, write_this_machine_offers

    if this_machine is not None:
        write_this_machine_offers(this_machine)
        print(f"wrote {this_machine}: edge device and cloud offer `this-machine`; set unit_usd / "
              "hourly_usd to your prices")
        return 0
    if spec_path is None:
        raise VerifyError("verify: give SPEC (or --write-offers PATH)")
    ws = api.Workspace.open(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv)
    plan = None
    if plan_path is not None:
        from placement.export import load_plan

        plan = load_plan(plan_path, ws.spec.digest())
    result = verify(ws, plan, duration_s=duration, headroom=headroom, on_event=_say, threads=threads)
    if not result.runnable:
        for line in result.cannot_run:
            print(f"cannot run here: {line}", file=sys.stderr)
        for line in result.notes:
            print(f"note: {line}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result.data, indent=2))
    else:
        from placement.verify.report import lines

        for line in lines(result.data):
            print(line)
    if store_profiles:
        _store(result)
    if result.data.get("failure"):
        return 1
    return 0


def _store(result) -> None:
    """The run's measured-served rows into the profile store, each said on stderr."""
    from placement.verify.served import store_served_rows
    from profiles.store import SERVED_LOAD

    for note in result.not_stored:
        _say(note)
    stored = store_served_rows(result.served_rows)
    for r in result.served_rows:
        _say(f"stored {r['piece']} on {r['hardware']} ({r['runtime']}, batch {r['batch']}): p50 "
             f"{r['latency_ms_p50']:.2f}, p95 {r['latency_ms_p95']:.2f} ms measured-served ({r[SERVED_LOAD]})")
    _say(f"{stored} measured-served row(s) in the profile store: later plans of these models use them "
         "(placement profiles list --source measured-served)")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)
