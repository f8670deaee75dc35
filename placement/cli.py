"""The `placement` command: a thin shell over `placement.api`.

Exit codes: 0 planned, 1 no feasible plan (explained), 2 bad input (one line on stderr naming the
field, file or flag — never a traceback), 3 internal error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from placement.cli_shell import err, out
from placement.cli_shell import profile as _profile
from placement.cli_shell import workspace as _workspace

# rich_markup_mode=None: help texts are plain text ("offer[/runtime]" is not a markup tag)
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Decide where each model of an application runs: edge or cloud, which offer, how many.")

# Exit codes (README "Exit codes"): what a script calling `placement` can branch on.
EXIT_PLANNED = 0
EXIT_INFEASIBLE = 1  # no plan meets the SLO and the budget; the explanation is printed
EXIT_INPUT = 2  # bad input: one line on stderr naming the field, file or flag
EXIT_INTERNAL = 3  # a bug: one line (PLACEMENT_DEBUG=1 for the traceback)


def main() -> None:
    """Entry point: 0 planned, 1 no feasible plan, 2 bad input (one line), 3 internal error."""
    from profiles.errors import UserError

    try:
        code = app(standalone_mode=False)  # click returns (not raises) Exit codes in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except UserError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):
            # a usage error from typer's (vendored) click: it prints its own message (exit 2)
            exc.show()
            sys.exit(EXIT_INPUT if exc.exit_code == 2 else exc.exit_code)
        if os.environ.get("PLACEMENT_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} "
              f"(set PLACEMENT_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines) if len(lines) <= 3 else "; ".join(lines[:3]) + " ..."


def _overrides(pricing_model: Optional[str] = None, discount: Optional[list[str]] = None,
               estimated_latency: Optional[str] = None):
    """The command line's what-if flags as Workspace overrides, validated like the spec's."""
    from placement import api
    from placement.spec import SpecError

    discounts = {}
    for item in discount or []:
        provider, _, percent = item.partition("=")
        try:
            discounts[provider.strip()] = float(percent)
        except ValueError:
            raise SpecError("--discount", f"expected provider=percent, got {item!r}") from None
    try:
        return api.Overrides(pricing_model=pricing_model, discount_percent=discounts or None,
                             estimated_latency=estimated_latency)
    except Exception as exc:  # pydantic's ValidationError: name the flag
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ("?",), "msg": str(exc)}
        flag = {"pricing_model": "--pricing-model", "discount_percent": "--discount",
                "estimated_latency": "--estimated-latency"}.get(str(first["loc"][0]), str(first["loc"][0]))
        raise SpecError(flag, first["msg"], "command line") from None


def _print_plan(plan) -> None:
    from placement.population import population_line
    from placement.rows import baseline_rows, cost_rows, plan_rows, segment_rows

    title = f"{plan.application}: {plan.status}"
    if plan.costs:
        title += f", ${plan.costs.monthly_usd:,.2f}/month ({plan.costs.pricing_model})"
    if plan.latency:
        title += f", p{plan.latency.percentile} {plan.latency.p95_ms:.1f} ms (SLO {plan.latency.slo_ms:g} ms)"
    table = Table(title=title)
    for col, justify in (("piece", "left"), ("where", "left"), ("replicas", "right"), ("runtime", "left"),
                         ("p95 ms", "right"), ("compute + transfer + wait", "right"),
                         ("latency from", "left"), ("$/month", "right")):
        table.add_column(col, justify=justify)
    for r in plan_rows(plan):
        style = "yellow" if r["latency_source"].startswith("estimated") else None
        table.add_row(r["piece"], r["where"], r["replicas"], r["runtime"], f"{r['p95_ms']:.2f}",
                      r["parts"], f"compute {r['latency_source']}; wait modelled", r["cost_note"] or f"${r['monthly_usd']:,.2f}",
                      style=style)
    out.print(table if plan.placements else f"[bold]{title}[/bold]")
    for seg in segment_rows(plan):
        out.print(f"  segment {seg['segment']:<14} {seg['share']:>4.0%} of sites ({seg['sites']}) on {seg['device']}"
                  f"{' (owned by users)' if seg.get('owned_by') == 'users' else ' (owned)' if seg['owned'] else ''}: p{plan.latency.percentile} {seg['latency_ms']:.1f} ms"
                  f"{'' if seg['meets_slo'] else '  MISSES the SLO'}", markup=False, highlight=False)
    if population_line(plan):  # a fleet: the share of sites (users) served within the SLO
        out.print(population_line(plan), markup=False, highlight=False)
    for line in cost_rows(plan):
        if line["kind"] != "compute":
            out.print(f"  {line['kind']:<11} {line['item']:<28} ${line['monthly_usd']:>12,.2f}/month   ({line['source']})",
                      markup=False, highlight=False)
    for v in plan.violations:
        out.print(f"[red]not feasible:[/red] {v}")
    if plan.explanation:
        for m in plan.explanation.messages:
            out.print(f"  why: {m}", markup=False, highlight=False)
    for b in baseline_rows(plan):
        if b["this_plan"]:
            continue
        cost = "—" if b["monthly_usd"] is None else f"${b['monthly_usd']:,.2f}"
        lat = "—" if b["latency_ms"] is None else f"{b['latency_ms']:.1f} ms"
        out.print(f"  baseline {b['name']:<17} {cost:>12}/month  {lat:>10}  {'feasible' if b['feasible'] else 'infeasible'}",
                  markup=False, highlight=False)
    for note in plan.notes:
        if note.startswith("warning:"):
            print(note, file=sys.stderr)
        elif " were left out: " in note:  # offers the pricing model has no price for
            print(f"note: {_shortened(note)}", file=sys.stderr)
    out.print(f"prices as of {plan.provenance.price_date}; estimated rows in yellow "
              f"(provisional estimates, see the error band)")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("placement-out"), "--out", help="where plan.json and summary.md go"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """Plan the bundled example application on the embedded price snapshot."""
    from placement import api

    started = time.perf_counter()
    ws = _workspace(api.demo_spec_path())
    _profile(ws, not as_json)
    outcome = ws.plan()
    out_dir.mkdir(parents=True, exist_ok=True)
    api.write_outputs(outcome, out_dir / "plan.json", out_dir / "summary.md")
    if as_json:
        print(outcome.plan.model_dump_json(indent=2))
        return
    _print_plan(outcome.plan)
    out.print(f"wrote {out_dir / 'plan.json'} and {out_dir / 'summary.md'} "
              f"in {time.perf_counter() - started:.1f} s")


@app.command()
def plan(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles", help="ProfileTable CSV: plan without TVM"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers", help="OfferTable CSV instead of the snapshot"),
    output: Path = typer.Option(Path("plan.json"), "-o", "--output"),
    summary: Optional[Path] = typer.Option(None, "--summary", help="also write a Markdown summary"),
    objective: str = typer.Option("cost", "--objective", help="cost (default) or latency"),
    pricing_model: Optional[str] = typer.Option(
        None, "--pricing-model", help="on-demand, spot, reserved-1y or reserved-3y (overrides the spec)"),
    discount: list[str] = typer.Option([], "--discount", help="provider=percent, e.g. aws=12.5 (overrides the spec)"),
    batches: Optional[str] = typer.Option(None, "--batches", help="profile and plan these batch sizes, e.g. 1,2,4,8"),
    estimated_latency: Optional[str] = typer.Option(
        None, "--estimated-latency",
        help="nominal, or upper-band: plan estimates at the top of their error band (overrides the spec)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cheapest placement meeting the SLO and the budget; writes plan.json."""
    from placement import api

    if objective not in ("cost", "latency"):
        raise api.InputError(f"--objective: must be cost or latency, got {objective!r}")
    if estimated_latency not in (None, "nominal", "upper-band"):
        raise api.InputError(f"--estimated-latency: must be nominal or upper-band, got {estimated_latency!r}")
    overrides = _overrides(pricing_model, discount, estimated_latency)
    ws = _workspace(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv, batches=batches)
    ws.spec_with(overrides)  # a bad flag fails before minutes of profiling
    _profile(ws, not as_json)
    outcome = ws.plan(overrides, objective=objective)
    if as_json:
        print(outcome.plan.model_dump_json(indent=2))
    else:
        _print_plan(outcome.plan)
    api.write_outputs(outcome, output, summary)  # after printing: a bad path loses no result
    if not as_json:
        out.print(f"wrote {output}")
    if not outcome.plan.feasible:
        raise typer.Exit(1)


@app.command()
def frontier(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers"),
    points: int = typer.Option(20, "--points", help="at most this many Pareto points"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write every point's plan as JSON"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The cost-latency Pareto set: sweep the SLO, keep the non-dominated plans."""
    from placement import api

    if points < 1:
        raise api.InputError(f"--points: must be at least 1, got {points}")
    ws = _workspace(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv)
    _profile(ws, not as_json)
    plans = ws.frontier(max_points=points)
    spec = ws.spec
    payload = api.plans_json(plans)
    if not plans:  # say why, like `plan` does, and exit like it
        outcome = ws.plan()
        if as_json:
            print(payload)
        else:
            _print_plan(outcome.plan)
        reason = ("no plan meets the SLO and the budget" if not outcome.plan.feasible
                  else "the sweep found no point within the solver's time limit")
        print(f"frontier: no Pareto point: {reason}", file=sys.stderr)
        if output:
            api.write_text(output, payload + "\n")
        raise typer.Exit(EXIT_INFEASIBLE)
    if as_json:
        print(payload)
    else:
        _print_frontier(spec, plans)
    if output:  # after printing: a bad path loses no result
        api.write_text(output, payload + "\n")


def _print_frontier(spec, plans) -> None:
    from placement.rows import frontier_rows

    t = Table(title=f"{spec.name}: {len(plans)} Pareto points (budget ${spec.monthly_budget_usd:,.0f})")
    for col in ("#", "$/month", f"p{spec.slo.percentile} ms", "$/month per ms saved", "latency from",
                "meets SLO", "placement"):
        t.add_column(col)
    rows = frontier_rows(plans)
    for i, row in enumerate(rows, 1):
        step = row["usd_per_ms_saved"]
        t.add_row(str(i), f"${row['monthly_usd']:,.2f}", row["latency_label"],
                  "" if step is None else f"${step:,.2f}", row["latency_from"],
                  "yes" if row["meets_slo"] else "no", row["placement"])
    out.print(t)
    if rows:
        out.print(f"prices as of {', '.join(sorted({r['price_date'] for r in rows}))}")


@app.command()
def evaluate(
    spec_path: Path = typer.Argument(..., metavar="SPEC"),
    assign: list[str] = typer.Option(..., "--assign", help="piece=offer[/runtime][/rN], once per piece (offer 'edge': the site's device); in a mixed fleet a bare model name places it in every segment"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What-if: cost, latency and broken constraints of a placement you choose."""
    from placement import api

    wanted = api.parse_assignments(assign)
    ws = _workspace(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv)
    _profile(ws, not as_json)
    outcome = ws.evaluate(wanted)
    if as_json:
        print(outcome.plan.model_dump_json(indent=2))
    else:
        _print_plan(outcome.plan)
    if not outcome.plan.feasible:
        raise typer.Exit(1)


@app.command()
def schema(
    out_dir: Path = typer.Option(Path("docs"), "--out", help="where the JSON Schemas are written"),
) -> None:
    """Write docs/spec.schema.json and docs/plan.schema.json from the pydantic models."""
    from placement.plan import plan_json_schema
    from placement.spec import spec_json_schema

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.schema.json").write_text(json.dumps(spec_json_schema(), indent=2) + "\n")
    (out_dir / "plan.schema.json").write_text(json.dumps(plan_json_schema(), indent=2) + "\n")
    out.print(f"wrote {out_dir / 'spec.schema.json'} and {out_dir / 'plan.schema.json'}")


from placement.cli_prices import prices_app  # noqa: E402  (mounted after the core commands)
from placement.cli_profile import register as _register_profile_commands  # noqa: E402
from placement.cli_store import profiles_app  # noqa: E402

app.add_typer(prices_app, name="prices")
app.add_typer(profiles_app, name="profiles")
_register_profile_commands(app)
app.command(name="app")(__import__("placement.cli_app", fromlist=["serve_app"]).serve_app)
__import__("placement.cli_export").cli_export.register(app)  # placement export
__import__("placement.cli_report").cli_report.register(app)  # placement report
__import__("placement.cli_verify").cli_verify.register(app)  # placement verify

if __name__ == "__main__":  # pragma: no cover
    main()


def _shortened(note: str, names: int = 12) -> str:
    """A note ending in a list of offers, with at most `names` of them (plan.json has them all)."""
    head, _, listed = note.partition(": ")
    offers = listed.split(", ")
    if len(offers) <= names + 3:  # "and 2 more" would save nothing
        return note
    return f"{head}: {', '.join(offers[:names])} and {len(offers) - names} more (plan.json's notes name them all)"
