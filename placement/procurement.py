"""The procurement report: what to buy, what it costs over time, how sure each number is, and
what happens when load, prices or the uplink move.

`build_report(ws, ...)` asks the Workspace for everything (the plan, the frontier, the plan
re-solved under each sensitivity case and today's placement evaluated under it) and turns it into
rows with the pure functions of `placement.procurement_rows`; `write_report` renders those rows,
once computed, as HTML (Jinja2, charts as inline SVG), CSV and PDF (headless Chromium).
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from placement import api
from placement import procurement_rows as pr
from placement.plan import Plan
from placement.rows import baseline_rows, cost_by_kind, segment_rows, slack_rows
from pricing import table as ot
from profiles import table as pt

PRICE_FACTOR_COLUMNS = (ot.HOURLY_USD, ot.SPOT_HOURLY_USD, ot.RESERVED_1Y_HOURLY_USD, ot.RESERVED_3Y_HOURLY_USD,
                        ot.UNIT_USD)
CHROMIUM = os.environ.get("PLACEMENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


class ReportError(api.InputError):
    """A report the tool cannot write (a plan from another spec, an output folder with no
    parent, no Chromium for the PDF); `str()` is the one line shown."""


# -- the CSVs' columns (documented in docs/report.md) ----------------------------------------

BOM_COLUMNS = ["tier", "item", "provider", "region", "instance_type", "segment", "serves", "quantity",
               "purchase_option", "owned", "unit_price_usd", "unit", "monthly_usd", "capital_usd",
               "amortised_usd", "price_source", "price_date"]
COST_COLUMNS = ["section", "item", "kind", "pricing_model", "quantity", "unit", "unit_usd", "monthly_usd",
                "commitment_usd", "cost_1y_usd", "cost_3y_usd", "capital_usd", "running_usd", "cash_usd",
                "amortised_usd", "note"]
SENSITIVITY_COLUMNS = ["case", "change", "status", "monthly_usd", "delta_usd", "latency_ms",
                       "today_monthly_usd", "today_latency_ms", "today_meets_slo", "today_holds",
                       "today_violations", "placement_changed", "new_placement"]
DECIMALS = {"unit_price_usd": 4, "hourly_usd": 4, "unit_usd": 4, "latency_ms": 1, "today_latency_ms": 1,
            "compute_ms": 1, "transfer_ms": 1, "wait_ms": 1}  # every other float column: cents


@dataclass
class Report:
    """Every row the report shows, computed once."""

    plan: Plan
    spec_name: str
    spec_path: str
    summary: dict
    bom: list[dict]
    cost_items: list[dict]
    by_kind: dict
    tco: list[dict]
    purchase_options: list[dict]
    unpriced: list[dict]
    candidates: int
    sensitivity: list[dict]
    upper_band: dict | None
    risk: list[dict]
    paths: list[dict]
    frontier: list[dict]
    segments: list[dict]
    baselines: list[dict]
    slack: list[dict]
    price_provenance: list[dict]
    profile_provenance: list[dict]
    appendix: dict
    timings: dict = field(default_factory=dict)


# -- asking the Workspace -------------------------------------------------------------------

def _with(base: api.Overrides | None, **changes) -> api.Overrides:
    data = base.model_dump(exclude_none=True) if base is not None else {}
    data.update(changes)
    return api.Overrides(**data)


def _scaled_workspace(ws: api.Workspace, factor: float) -> api.Workspace:
    """The same workspace with every cloud hourly price and edge unit price times `factor`
    (egress and electricity unchanged); profiles and I/O bytes are shared, not recomputed."""
    offers = ws.offers_table.copy()
    for column in PRICE_FACTOR_COLUMNS:
        offers[column] = pd.to_numeric(offers[column], errors="coerce") * factor
    return api.Workspace(ws.spec, ws.base_dir, offers_table=offers, profiles_table=ws.profiles,
                         io_bytes=ws.piece_io_bytes(), origin=ws.origin)


def _today(ws: api.Workspace, plan: Plan, overrides: api.Overrides | None):
    """Today's placement (the replicas bought) under the case; when the case needs a pool size
    today's options do not have, the same offers re-sized, marked as such."""
    if not plan.placements:
        return None, "no placement today", False
    wanted = pr.today_assignment(plan)
    try:
        return ws.evaluate(wanted, overrides).plan, "", False
    except ValueError as exc:  # a UserError or the evaluator's AssignmentError: no such option
        resized = {piece: spec.rsplit("/r", 1)[0] for piece, spec in wanted.items()}
        try:
            out = ws.evaluate(resized, overrides).plan
        except ValueError:
            return None, _no_option(exc), False
        was = {p.piece: p.replicas for p in plan.placements}
        moved = [f"{p.piece} {was[p.piece]}→{p.replicas}" for p in out.placements
                 if p.tier == "cloud" and p.replicas != was.get(p.piece)]
        return out, "today's pools are too small: re-sized " + ", ".join(moved or ["(no change)"]), True


def _no_option(exc: Exception) -> str:
    """Which piece of today's placement has no option under the case, in a buyer's words."""
    m = re.match(r"--assign (\S+?)=([^/\s]+)\S*: no such option", str(exc))
    if m:
        return f"{m.group(1)} on {m.group(2)} cannot carry this load within the utilisation cap"
    return str(exc).split(" (offers it can use")[0]


def sensitivity_cases(ws: api.Workspace, plan: Plan, base: api.Overrides | None) -> list[pr.Case]:
    """The plan re-solved at load ×0.5, ×2 and ×5, prices −20 % and +20 %, the uplink halved,
    and every estimate at the top of its band; today's placement evaluated under each."""
    spec = ws.spec_with(base)
    rate, uplink = spec.load.rate_per_site_rps, spec.network.uplink_mbps
    cases: list[tuple[str, str, api.Workspace, api.Overrides | None]] = [
        (f"load ×{k:g}", f"{rate * k:g} requests/s per site (was {rate:g}/s)", ws, _with(base, rate_per_site_rps=rate * k))
        for k in (0.5, 2, 5)]
    for factor in (0.8, 1.2):
        cases.append((f"prices {'−' if factor < 1 else '+'}{abs(factor - 1):.0%}",
                      f"cloud hourly and edge unit prices ×{factor:g} (egress, power unchanged)",
                      _scaled_workspace(ws, factor), base))
    cases.append(("uplink halved", f"uplink {uplink / 2:g} Mbit/s (was {uplink:g})", ws,
                  _with(base, uplink_mbps=uplink / 2)))
    cases.append(("estimates at top of band", "every estimated latency × (1 + its error band)", ws,
                  _with(base, estimated_latency="upper-band")))
    out = []
    for name, change, where, overrides in cases:
        solved = where.plan(overrides, analyse=False).plan
        today, note, resized = _today(where, plan, overrides)
        if resized:
            today = today.model_copy(update={"feasible": False, "violations": [note, *today.violations]})
            note = ""
        out.append(pr.Case(name, change, solved, today, note, today_fails=today is None and bool(plan.placements)))
    return out


def _hourly_by_offer(team: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    out = {}
    for row in team[team[ot.TIER] == "cloud"].to_dict("records"):
        out[row[ot.OFFER]] = {m: (None if pd.isna(row[c]) else float(row[c])) for m, c in ot.PRICING_MODELS.items()}
    return out


def _candidates(ws: api.Workspace, spec, team: pd.DataFrame) -> list[dict]:
    """The spec's candidate cloud offers with their price at each pricing model."""
    hourly = _hourly_by_offer(team)
    seen: dict[str, dict] = {}
    for c in spec.hardware.cloud:
        sel = api.select_offers_in(team, tiers=["cloud"], providers=[c.provider], regions=c.regions,
                                   instance_types=c.instance_types, gpu=c.gpu, max_hourly=c.max_hourly_usd)
        for row in sel.to_dict("records"):
            seen.setdefault(row[ot.OFFER], {"offer": row[ot.OFFER], "provider": row[ot.PROVIDER],
                                            "region": row[ot.REGION], "instance_type": row[ot.INSTANCE_TYPE],
                                            **hourly[row[ot.OFFER]]})
    return list(seen.values())


def _profile_rows(ws: api.Workspace) -> list[dict]:
    table = ws.profiles_table
    if table is None or table.empty:
        return []
    cols = [pt.PIECE, pt.HARDWARE, pt.RUNTIME, pt.MEASURED_AT, pt.TVM_VERSION]
    return [{k: ("" if pd.isna(v) else str(v)) for k, v in r.items()}
            for r in table[cols].drop_duplicates([pt.PIECE, pt.HARDWARE, pt.RUNTIME]).to_dict("records")]


def _machine(ws: api.Workspace) -> str:
    """Where the measured-local rows were taken (their hardware class) and this machine."""
    here = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        here = f"{model}; {here}" if model else here
    except OSError:
        pass
    table = ws.profiles_table
    local = []
    if table is not None and not table.empty:
        local = sorted(set(table.loc[table[pt.SOURCE] == "measured-local", pt.HARDWARE].astype(str)))
    return (f"measured-local rows: {', '.join(local)}; " if local else "no measured-local rows; ") + f"this machine: {here}"


def build_report(ws: api.Workspace, *, overrides: api.Overrides | None = None, plan: Plan | None = None,
                 frontier_points: int = 12) -> Report:
    """Everything the report shows, asked of one Workspace (re-plans reuse its profiles and
    problems). `plan`: a plan.json made earlier from this spec, reported instead of re-solving."""
    timings = {}
    started = time.perf_counter()
    spec = ws.spec_with(overrides)
    if plan is None:
        plan = ws.plan(overrides).plan
    elif plan.provenance.spec_sha256 != spec.digest():
        raise ReportError(f"--plan: this plan was made from another spec (its spec sha256 "
                          f"{plan.provenance.spec_sha256[:12]}…, {ws.origin or 'this spec'} has {spec.digest()[:12]}…)")
    timings["plan_s"] = time.perf_counter() - started
    t = time.perf_counter()
    points = ws.frontier(overrides, max_points=frontier_points) if plan.placements else []
    timings["frontier_s"] = time.perf_counter() - t
    t = time.perf_counter()
    cases = sensitivity_cases(ws, plan, overrides)
    timings["sensitivity_s"] = time.perf_counter() - t
    team = ws.team_offers(spec)
    candidates = _candidates(ws, spec, team)
    months = spec.edge.amortisation_months
    sensitivity = pr.sensitivity_rows(plan, cases)
    appendix = {
        "spec_sha256": plan.provenance.spec_sha256, "price_date": plan.provenance.price_date,
        "tvm_version": plan.provenance.tvm_version or "n/a", "tool_version": plan.provenance.tool_version,
        "generated_at": plan.provenance.generated_at, "machine": _machine(ws),
        "runtimes": ", ".join(sorted({p.runtime for p in plan.placements})) or "n/a",
        "solver": plan.solver.status + ("" if plan.solver.gap is None else f", gap {plan.solver.gap:.2%}"),
        "solver_detail": f"objective {plan.solver.objective}, {plan.solver.wall_time_s:.2f} s of {plan.solver.time_limit_s:g} s, "
                         f"seed {plan.solver.seed}, {plan.solver.workers} workers, {plan.solver.options} options",
        "amortisation_months": months, "electricity_usd_per_kwh": spec.edge.electricity_usd_per_kwh,
        "utilisation_cap": spec.solver.utilisation_cap, "load": f"{spec.load.sites} sites × "
        f"{spec.load.rate_per_site_rps:g} requests/s", "network": f"uplink {spec.network.uplink_mbps:g} Mbit/s, "
        f"downlink {spec.network.downlink_mbps:g} Mbit/s", "notes": list(plan.notes),
        "explanation": plan.explanation.model_dump() if plan.explanation else None,
        "violations": list(plan.violations),
    }
    report = Report(
        plan=plan, spec_name=spec.name, spec_path=ws.origin or "", summary=pr.summary(plan),
        bom=pr.bom_rows(plan, months), cost_items=pr.cost_item_rows(plan), by_kind=cost_by_kind(plan),
        tco=pr.tco_rows(plan, months), purchase_options=pr.purchase_option_rows(plan, _hourly_by_offer(team)),
        unpriced=pr.unpriced_offer_rows(candidates), candidates=len(candidates), sensitivity=sensitivity,
        upper_band=next((r for r in sensitivity if r["case"] == "estimates at top of band"), None),
        risk=pr.risk_rows(plan), paths=pr.path_chart_rows(plan), frontier=pr.frontier_chart_rows(plan, points),
        segments=segment_rows(plan), baselines=baseline_rows(plan), slack=slack_rows(plan),
        price_provenance=pr.price_provenance_rows(plan),
        profile_provenance=pr.profile_provenance_rows(plan, _profile_rows(ws)), appendix=appendix,
    )
    timings["build_s"] = time.perf_counter() - started
    report.timings = timings
    return report


# -- rendering -------------------------------------------------------------------------------

def fmt(value, column: str = "", *, html: bool = False) -> str:
    """One number as the report shows it; CSV and HTML differ only in the $ sign and commas."""
    if value is None:
        return "—" if html else ""
    if isinstance(value, bool):
        return ("yes" if value else "no") if html else str(value).lower()
    if isinstance(value, int) and not column.endswith("_usd"):
        return f"{value:,}" if html else str(value)
    if isinstance(value, float):
        decimals = DECIMALS.get(column, 1 if column.endswith("_ms") else 2)
        if column.endswith("_percent"):
            return f"{value:.1f}%" if html else f"{value:.1f}"
        if html and column.endswith("_usd"):
            return f"-${-value:,.{decimals}f}" if value < 0 else f"${value:,.{decimals}f}"
        return f"{value:,.{decimals}f}" if html else f"{value:.{decimals}f}"
    return str(value)


def bom_csv_rows(report: Report) -> list[dict]:
    return [{c: r.get(c) for c in BOM_COLUMNS} for r in report.bom]


def cost_csv_rows(report: Report) -> list[dict]:
    """costs.csv: the itemised monthly costs, the total, the TCO horizons and the purchase
    options, one table with a `section` column (documented in docs/report.md)."""
    rows = []
    for i in report.cost_items:
        rows.append({"section": "monthly item", "item": i["item"], "kind": i["kind"],
                     "pricing_model": report.summary["pricing_model"], "quantity": i["quantity"],
                     "unit": i["unit"], "unit_usd": i["unit_usd"], "monthly_usd": i["monthly_usd"],
                     "note": f"{i['split']}; {i['source']}"})
    if report.summary["monthly_usd"] is not None:
        rows.append({"section": "monthly total", "item": "whole plan", "pricing_model": report.summary["pricing_model"],
                     "monthly_usd": report.summary["monthly_usd"]})
    for r in report.tco:
        rows.append({"section": "tco", "item": r["horizon"], "quantity": r["months"], "unit": "months",
                     "capital_usd": r["capital_usd"], "running_usd": r["running_usd"], "cash_usd": r["cash_usd"],
                     "amortised_usd": r["amortised_usd"]})
    for r in report.purchase_options:
        rows.append({"section": f"purchase option ({r['scope']})", "item": r["line"], "kind": "compute" if r["offer"] else "",
                     "pricing_model": r["pricing_model"], "unit_usd": r["hourly_usd"],
                     "unit": "hour" if r["offer"] else "", "monthly_usd": r["monthly_usd"],
                     "commitment_usd": r["commitment_usd"], "cost_1y_usd": r["cost_1y_usd"],
                     "cost_3y_usd": r["cost_3y_usd"], "note": r["note"]})
    return [{c: r.get(c) for c in COST_COLUMNS} for r in rows]


def sensitivity_csv_rows(report: Report) -> list[dict]:
    return [{c: r.get(c) for c in SENSITIVITY_COLUMNS} for r in report.sensitivity]


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([fmt(r.get(c), c) for c in columns])
    return buf.getvalue()


def render_html(report: Report) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from placement import report_charts

    env = Environment(loader=PackageLoader("placement", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["f"] = lambda v, col="": fmt(v, col, html=True)
    s = report.summary
    charts = {}
    if report.cost_items:
        charts["cost"] = report_charts.cost_chart(report.cost_items)
    if report.paths:
        charts["paths"] = report_charts.path_chart(report.paths, s["slo_ms"])
    if report.frontier:
        charts["frontier"] = report_charts.frontier_chart(report.frontier, s["slo_ms"])
    from markupsafe import Markup

    return env.get_template("report.html.j2").render(
        r=report, s=s, charts={k: Markup(v) for k, v in charts.items()}, a=report.appendix)


def write_pdf(html_path: Path, pdf_path: Path) -> list[str]:
    """Print the HTML with headless Chromium (the same engine that shows it); returns the
    requests it tried to make beyond the file itself (none: the page is self-contained)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise ReportError(f"report.pdf: no Chromium at {CHROMIUM} (install Debian's chromium or set "
                          "PLACEMENT_CHROMIUM; report.html and the CSVs were written)")
    fetched: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()

                def guard(route):
                    url = route.request.url
                    if url.startswith(("file:", "data:")) and url.split("#")[0] == html_path.resolve().as_uri():
                        return route.continue_()
                    fetched.append(url)
                    return route.abort()

                page.route("**/*", guard)
                page.goto(html_path.resolve().as_uri(), wait_until="load")
                page.emulate_media(media="print")
                page.pdf(path=str(pdf_path), format="A4", print_background=True,
                         margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"},
                         display_header_footer=True, header_template="<span></span>",
                         footer_template='<div style="font-size:8px;width:100%;text-align:center;color:#666">'
                                         '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ReportError(f"report.pdf: Chromium failed ({str(exc).splitlines()[0]})") from None
    return fetched


def check_output_dir(out_dir: Path) -> Path:
    """The report's folder: created if missing, but only inside a folder that exists."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"-o {out_dir}: exists and is not a folder")
    if not out_dir.exists() and not out_dir.resolve().parent.is_dir():
        raise ReportError(f"-o {out_dir}: its parent folder {out_dir.resolve().parent} does not exist")
    return out_dir


def write_report(report: Report, out_dir: Path, *, pdf: bool = True) -> dict[str, Path]:
    """report.html, report.pdf, bom.csv, costs.csv and sensitivity.csv under `out_dir`."""
    from profiles.paths import atomic_write_text

    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(exist_ok=True)
    t = time.perf_counter()
    paths = {"report.html": out_dir / "report.html", "bom.csv": out_dir / "bom.csv",
             "costs.csv": out_dir / "costs.csv", "sensitivity.csv": out_dir / "sensitivity.csv"}
    atomic_write_text(paths["report.html"], render_html(report))
    atomic_write_text(paths["bom.csv"], to_csv(bom_csv_rows(report), BOM_COLUMNS))
    atomic_write_text(paths["costs.csv"], to_csv(cost_csv_rows(report), COST_COLUMNS))
    atomic_write_text(paths["sensitivity.csv"], to_csv(sensitivity_csv_rows(report), SENSITIVITY_COLUMNS))
    report.timings["html_csv_s"] = time.perf_counter() - t
    if pdf:
        t = time.perf_counter()
        paths["report.pdf"] = out_dir / "report.pdf"
        fetched = write_pdf(paths["report.html"], paths["report.pdf"])
        if fetched:  # pragma: no cover - the template inlines everything
            raise ReportError(f"report.html is not self-contained: it fetched {fetched[0]}")
        report.timings["pdf_s"] = time.perf_counter() - t
    return paths
