"""`placement export`: the deployer's bundle of a plan, and `--check` of a bundle."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add `export` to the main app (called by placement.cli)."""
    app.command()(export)


def export(
    spec_path: Optional[Path] = typer.Argument(None, metavar="SPEC", help="the spec the plan was made from"),
    plan_path: Optional[Path] = typer.Option(None, "--plan", help="plan.json to export (default: plan now)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="the bundle folder to write"),
    check: Optional[Path] = typer.Option(None, "--check", help="verify a bundle's hashes and that it matches its plan"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers"),
) -> None:
    """Turn a plan into a bundle: artifacts per piece, Kubernetes/KServe/Triton per cloud pool,
    a folder per edge site, and manifest.json with every file's sha256."""
    from profiles.errors import UserError

    try:
        _export(spec_path, plan_path, output, check, profiles_csv, offers_csv)
    except UserError as exc:  # every user error: one line, exit 2 (as placement.cli.main does)
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _export(spec_path, plan_path, output, check, profiles_csv, offers_csv) -> None:
    from placement import api
    from placement.export import ExportError, check_bundle, export_bundle, load_plan

    if check is not None:
        spec_sha = None
        if spec_path is not None:
            from placement.spec import load_spec

            spec_sha = load_spec(spec_path)[0].digest()
        problems = check_bundle(check, spec_sha)
        for line in problems:
            print(f"{check}: {line}", file=sys.stderr)
        if problems:
            raise typer.Exit(1)
        print(f"{check}: every file matches manifest.json and the bundle matches its plan")
        return
    if spec_path is None or output is None:
        raise ExportError("export: give SPEC and -o BUNDLE (or --check BUNDLE)")
    started = time.perf_counter()
    ws = api.Workspace.open(spec_path, offers_csv=offers_csv, profiles_csv=profiles_csv)
    for line in ws.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if plan_path is not None:
        plan = load_plan(plan_path, ws.spec.digest())
    else:  # plan now (profiling first unless the profiles came from a CSV)
        plan = ws.plan(analyse=False).plan
        for line in ws.profile_problems:
            print(f"warning: {line}", file=sys.stderr)
    manifest = export_bundle(ws, plan, output, progress=lambda msg: print(msg, file=sys.stderr))
    for note in manifest.notes:
        print(f"note: {note}", file=sys.stderr)
    size = sum({f.sha256: f.bytes for f in manifest.files}.values())  # copies are hard links
    print(f"wrote {output}: {len(manifest.files)} files, {size / 2**20:.1f} MiB of distinct content, "
              f"{len(manifest.pools)} cloud pool(s), {len(manifest.sites)} edge site(s) "
              f"in {time.perf_counter() - started:.1f} s")
