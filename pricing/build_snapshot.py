"""Maintainer command: rebuild `pricing/data/cloud_snapshot.csv` through the live fetchers' code.

    python -m pricing.build_snapshot --from-recorded DIR [--out CSV] [--date YYYY-MM-DD]
    python -m pricing.build_snapshot --live [--record DIR] [--out CSV]
                                     [--aws-regions r1,r2] [--azure-regions r1,r2]

A recording is one JSON file per provider and region, `DIR/<provider>/<region>.json`, holding
the raw API responses (`pricing.aws.Recorded` / `pricing.azure.Recorded`). `--live` downloads
them (needs AWS credentials; Azure prices are public), writes them under `--record` (or a
temporary directory) and then builds from that directory, so a live build and a replay run the
same normalisation (`pricing.aws.normalise`, `pricing.azure.normalise`) as
`placement prices refresh`. Offers with no known hardware class are dropped with a warning.

The default regions and instance types are those of the current snapshot. Egress tiers are not
part of the snapshot CSV (`pricing/data/egress.json` is maintained by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from pricing import aws, azure
from pricing import table as ot
from pricing.fetch import PriceFetchError, snapshot_instance_types, snapshot_specs

MODULES = {"aws": aws, "azure": azure}
SNAPSHOT_PREFIX = "snapshot: "
DEFAULT_OUT = Path(__file__).with_name("data") / "cloud_snapshot.csv"


def default_regions(provider: str) -> list[str]:
    from pricing.snapshot import load_cloud_snapshot

    cloud = load_cloud_snapshot()
    return sorted(set(cloud.loc[cloud[ot.PROVIDER] == provider, ot.REGION]))


def recordings(directory: Path) -> list[tuple[str, Path]]:
    return [(provider, path) for provider in MODULES
            for path in sorted((directory / provider).glob("*.json"))]


def build_from_recorded(directory: Path, *, price_date: str | None = None
                        ) -> tuple[pd.DataFrame, list[str]]:
    """Normalise every recording under `directory` into one dated snapshot table."""
    loaded = []
    for provider, path in recordings(directory):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            loaded.append((provider, MODULES[provider].Recorded.from_json(data)))
        except (OSError, ValueError, TypeError) as exc:
            raise PriceFetchError(f"{path}: not a recording ({exc})") from None
    if not loaded:
        raise PriceFetchError(f"{directory}: no recordings (<provider>/<region>.json)")
    date = price_date or max(rec.fetched_at[:10] for _, rec in loaded)
    frames, warnings = [], []
    for provider, rec in loaded:
        df, w = MODULES[provider].normalise(rec, price_date=date, source_prefix=SNAPSHOT_PREFIX,
                                            fallback_specs=snapshot_specs(provider))
        frames.append(df)
        warnings += w
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise PriceFetchError(f"{directory}: the recordings hold no usable offers")
    snap = pd.concat(frames, ignore_index=True)
    snap = snap.sort_values([ot.PROVIDER, ot.INSTANCE_TYPE, ot.REGION]).reset_index(drop=True)
    return ot.validate_offer_table(snap, origin="built snapshot"), warnings


def record_live(directory: Path, regions: dict[str, list[str]], on_progress=None) -> None:
    """Download every provider/region into `directory` as recordings."""
    for provider, provider_regions in regions.items():
        module = MODULES[provider]
        for region in provider_regions:
            rec = module.download(region, snapshot_instance_types(provider),
                                  on_progress=on_progress)
            path = directory / provider / f"{region}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec.to_json(), indent=1, default=str), encoding="utf-8")


def _regions(text: str | None, provider: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()] if text else default_regions(provider)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pricing.build_snapshot",
                                     description=__doc__.split("\n\n")[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--from-recorded", type=Path, metavar="DIR")
    how.add_argument("--live", action="store_true")
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="with --live: keep the raw responses here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--date", help="price date of every row (default: the fetch date)")
    parser.add_argument("--aws-regions", help="comma-separated (default: the snapshot's)")
    parser.add_argument("--azure-regions", help="comma-separated (default: the snapshot's)")
    args = parser.parse_args(argv)
    try:
        if args.live:
            regions = {"aws": _regions(args.aws_regions, "aws"),
                       "azure": _regions(args.azure_regions, "azure")}
            tmp = None if args.record else tempfile.TemporaryDirectory()
            directory = args.record or Path(tmp.name)
            record_live(directory, regions,
                        on_progress=lambda msg: print(msg, file=sys.stderr))
        else:
            directory = args.from_recorded
        snap, warnings = build_from_recorded(directory, price_date=args.date)
    except PriceFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    snap.to_csv(args.out, index=False)
    counts = snap.groupby(ot.PROVIDER)[ot.OFFER].count().to_dict()
    print(f"wrote {args.out}: {len(snap)} offers {counts}, price date "
          f"{snap[ot.PRICE_DATE].iloc[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
