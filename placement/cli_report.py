"""`placement report SPEC [-o report/] [--plan plan.json]`: the procurement report (HTML, PDF,
bom.csv, costs.csv, sensitivity.csv), a shell over `placement.procurement`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer


def report(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    out_dir: Path = typer.Option(Path("report"), "-o", "--output", help="folder for report.html, report.pdf and the CSVs"),
    plan_json: Optional[Path] = typer.Option(None, "--plan", help="report this plan.json (made from SPEC) instead of re-solving"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles", help="ProfileTable CSV: plan without TVM"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers", help="OfferTable CSV instead of the snapshot"),
    pricing_model: Optional[str] = typer.Option(
        None, "--pricing-model", help="on-demand, spot, reserved-1y or reserved-3y (overrides the spec)"),
    pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="also print report.pdf with headless Chromium"),
) -> None:
    """The procurement report: what to buy, its cost over 1 and 3 years, purchase options,
    sensitivity to load, prices and uplink, and where every number comes from."""
    from placement import api
    from placement import procurement as proc
    from placement.plan import Plan

    started = time.perf_counter()
    proc.check_output_dir(out_dir)  # before minutes of work
    if pricing_model not in (None, "on-demand", "spot", "reserved-1y", "reserved-3y"):
        raise api.InputError(f"--pricing-model: must be on-demand, spot, reserved-1y or reserved-3y, got {pricing_model!r}")
    overrides = api.Overrides(pricing_model=pricing_model) if pricing_model else None
    plan = None
    if plan_json is not None:
        if not plan_json.is_file():
            raise api.InputError(f"--plan {plan_json}: no such file")
        try:
            plan = Plan.read(plan_json)
        except ValueError as exc:  # pydantic's ValidationError, bad JSON
            raise api.InputError(f"--plan {plan_json}: not a plan.json ({str(exc).splitlines()[0]})") from None
    ws = api.Workspace.open(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv)
    for line in ws.warnings:
        print(f"warning: {line}", file=sys.stderr)
    ws.spec_with(overrides)
    if ws.profiles_table is None:
        ws.profile()
        for line in ws.profile_problems:
            print(f"warning: {line}", file=sys.stderr)
    built = proc.build_report(ws, overrides=overrides, plan=plan)
    paths = proc.write_report(built, out_dir, pdf=pdf)
    s = built.summary
    if s["monthly_usd"] is not None:
        print(f"{built.spec_name}: {proc.fmt(s['monthly_usd'], 'monthly_usd', html=True)}/month ({s['pricing_model']}), "
              f"{proc.fmt(s['annual_usd'], 'annual_usd', html=True)}/year; p{s['percentile']} "
              f"{proc.fmt(s['latency_ms'], 'latency_ms', html=True)} ms vs SLO {s['slo_ms']:g} ms; {s['placement']}")
    else:
        print(f"{built.spec_name}: no plan ({built.plan.status}): {s['sentences'][0]}")
    for r in built.sensitivity:
        print(f"  {r['case']:<26} {proc.fmt(r['monthly_usd'], 'monthly_usd', html=True):>12}/month  "
              f"today's placement: {'—' if r['today_holds'] is None else 'holds' if r['today_holds'] else 'fails'}")
    t = built.timings
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - started:.1f} s "
          f"(plan {t['plan_s']:.1f} s, frontier {t['frontier_s']:.1f} s, sensitivity {t['sensitivity_s']:.1f} s"
          + (f", pdf {t['pdf_s']:.1f} s" if "pdf_s" in t else "") + ")")
    if not built.plan.feasible:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
