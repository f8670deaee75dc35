"""The catalog cache: fetched price tables on disk, merged over the embedded snapshot.

Layout under the project's cache root (`$PLACEMENT_CACHE_DIR`, else the user cache dir):

    catalog/<provider>/<region>.csv        an OfferTable, as fetched
    catalog/<provider>/<region>.meta.json  {fetched_at, source, sha256 of the CSV, rows,
                                            warnings, egress_tiers}
    catalog/<provider>/<region>.csv.lock   taken while refreshing

Rules (SkyPilot's catalog layer, minus its regrets):
- Files are written atomically (temp file + rename) under a `filelock.FileLock`; freshness is
  checked again after taking the lock, so two processes refreshing at once fetch once.
- A CSV whose sha256 is not the one recorded in its meta was edited by hand (or put there by
  the user): it is used as is and never overwritten.
- A failed refresh keeps the old file and comes back as a warning (`RefreshResult.error` says
  why), never as a half-written cache.
- `load_offers` never touches the network: cached rows win over the snapshot's for the same
  offer id, and every row keeps its own `price_source` and `price_date`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import pandas as pd
from filelock import FileLock, Timeout
from platformdirs import user_cache_dir

from pricing import table as ot
from pricing.egress import Tier
from pricing.fetch import FetchResult, PriceFetchError, Progress, fetch_offers, utc_now

CACHE_ENV = "PLACEMENT_CACHE_DIR"  # the project's one cache root (profiles keep theirs there too)
APP_NAME = "placement-optimizer"
CATALOG_DIR = "catalog"
LOCK_TIMEOUT_S = 600.0
REFRESH_HINT = "refresh with `placement prices refresh` or pass an OfferTable CSV"


def catalog_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or user_cache_dir(APP_NAME)) / CATALOG_DIR


def _write_atomically(path: Path, text: str) -> None:
    """Write a temp file beside `path`, then rename it over `path`: a reader (or a crash) sees the
    old file or the new one, never half of one; a failed write leaves no temp file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=path.parent,
                                     prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        tmp = Path(f.name)
        try:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def csv_path(provider: str, region: str) -> Path:
    return catalog_dir() / provider / f"{region}.csv"


def meta_path(provider: str, region: str) -> Path:
    return catalog_dir() / provider / f"{region}.meta.json"


def lock_path(provider: str, region: str) -> Path:
    return catalog_dir() / provider / f"{region}.csv.lock"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_meta(provider: str, region: str) -> dict | None:
    path = meta_path(provider, region)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_user_edited(provider: str, region: str) -> bool:
    """True when the cached CSV is not byte-for-byte what a refresh wrote (or has no meta)."""
    path = csv_path(provider, region)
    if not path.is_file():
        return False
    meta = read_meta(provider, region)
    return meta is None or meta.get("sha256") != _sha256(path)


def _parse_time(value) -> datetime | None:
    try:
        ts = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def age_days(fetched_at, now: datetime | None = None) -> float | None:
    ts = _parse_time(fetched_at)
    if ts is None:
        return None
    return ((now or utc_now()) - ts).total_seconds() / 86400.0


def write_entry(result: FetchResult) -> Path:
    """Store a fetch atomically: the CSV, then its meta naming the CSV's sha256."""
    path = csv_path(result.provider, result.region)
    text = result.offers[ot.OFFER_COLUMNS].to_csv(index=False)
    _write_atomically(path, text)
    tiers = None if result.egress_tiers is None else [
        [None if math.isinf(w) else w, p] for w, p in result.egress_tiers]
    meta = {
        "provider": result.provider, "region": result.region,
        "fetched_at": result.fetched_at, "source": result.source,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "rows": len(result.offers), "warnings": list(result.warnings),
        "egress_tiers": tiers,
    }
    _write_atomically(meta_path(result.provider, result.region),
                      json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def cached_egress_tiers(provider: str, region: str) -> tuple[Tier, ...] | None:
    """The egress tiers fetched with `region`'s prices, if any (else use `pricing.egress`)."""
    meta = read_meta(provider, region)
    if not meta or not meta.get("egress_tiers"):
        return None
    return tuple((math.inf if w is None else float(w), float(p)) for w, p in meta["egress_tiers"])


# --- refresh -----------------------------------------------------------------------------------

Status = Literal["fetched", "fresh", "kept", "edited", "failed"]


@dataclass
class RefreshResult:
    provider: str
    region: str
    status: Status  # fetched; fresh (no fetch needed); kept / failed (fetch failed, old file
    #                 kept / none there); edited (a hand-edited file, left alone)
    path: Path
    rows: int = 0
    fetched_at: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # why the refresh did not happen (kept, failed, edited)

    @property
    def ok(self) -> bool:
        return self.status in ("fetched", "fresh")


Fetcher = Callable[..., FetchResult]  # (provider, region, *, instance_types, on_progress)


def refresh(provider: str, region: str, *, fetch: Fetcher | None = None,
            max_age_days: float | None = None, instance_types: Iterable[str] | None = None,
            on_progress: Progress | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S,
            now: datetime | None = None) -> RefreshResult:
    """Fetch `provider`/`region` into the cache unless it is fresher than `max_age_days`
    (None: always fetch). Never raises for a failed fetch: see `RefreshResult.error`."""
    fetch = fetch or fetch_offers
    path = csv_path(provider, region)

    def result(status: Status, **kw) -> RefreshResult:
        return RefreshResult(provider=provider, region=region, status=status, path=path, **kw)

    def fresh() -> RefreshResult | None:
        meta = read_meta(provider, region)
        if max_age_days is None or meta is None or not path.is_file():
            return None
        if is_user_edited(provider, region):
            return None
        age = age_days(meta.get("fetched_at"), now)
        if age is None or age > max_age_days:
            return None
        return result("fresh", rows=int(meta.get("rows", 0)), fetched_at=meta["fetched_at"])

    def failed(error: str) -> RefreshResult:
        meta = read_meta(provider, region)
        if path.is_file():
            when = (meta or {}).get("fetched_at", "an earlier refresh")
            return result("kept", error=error, fetched_at=(meta or {}).get("fetched_at"),
                          warnings=[f"{error}; keeping the prices fetched {when} ({path})"])
        from pricing.snapshot import snapshot_date

        return result("failed", error=error,
                      warnings=[f"{error}; the embedded snapshot of {snapshot_date()} stays in use"])

    done = fresh()
    if done:
        return done
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(provider, region)), timeout=lock_timeout_s)
    try:
        with lock:
            done = fresh()  # another process may have refreshed while we waited
            if done:
                return done
            if is_user_edited(provider, region):
                why = (f"{path} was edited by hand (its sha256 is not the one in "
                       f"{meta_path(provider, region).name}); not overwritten, move it away "
                       f"to refresh")
                return result("edited", error=why, warnings=[why])
            try:
                fetched = fetch(provider, region, instance_types=instance_types,
                                on_progress=on_progress)
            except PriceFetchError as exc:
                return failed(str(exc))
            write_entry(fetched)
            return result("fetched", rows=len(fetched.offers), fetched_at=fetched.fetched_at,
                          warnings=list(fetched.warnings))
    except Timeout:
        return failed(f"{provider} {region}: another refresh holds {lock.lock_file}; gave up "
                      f"after {lock_timeout_s:g} s")


# --- reading: cache over snapshot --------------------------------------------------------------


def stale_price_warning(price_date: str, max_age_days: int, today: date | None = None
                        ) -> str | None:
    """A one-line warning when prices dated `price_date` are older than `max_age_days`."""
    today = today or utc_now().date()
    try:
        day = date.fromisoformat(str(price_date)[:10])
    except ValueError:
        return f"price date {price_date!r} is not an ISO date; cannot tell how old the prices are"
    age = (today - day).days
    if age <= max_age_days:
        return None
    return (f"prices dated {day.isoformat()} are {age} days old (more than {max_age_days}); "
            f"{REFRESH_HINT}")


def cached_regions(providers: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(provider, region) of every cached table."""
    root = catalog_dir()
    if not root.is_dir():
        return []
    wanted = None if providers is None else set(providers)
    return sorted(
        (d.name, f.name[:-len(".csv")])
        for d in root.iterdir() if d.is_dir() and (wanted is None or d.name in wanted)
        for f in d.glob("*.csv")
    )


def read_cached(provider: str, region: str) -> tuple[pd.DataFrame | None, list[str]]:
    """One cached table, validated, or (None, why not) when it cannot be used."""
    path = csv_path(provider, region)
    warnings = []
    try:
        df = pd.read_csv(path, dtype={ot.PRICE_DATE: str})
        df = ot.validate_offer_table(df, origin=str(path))
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        why = (f"{path}: unusable ({first}); the snapshot's {provider} {region} rows are "
               f"used instead")
        return None, [why]
    if is_user_edited(provider, region):
        warnings.append(f"{path} was edited by hand; its rows are used as they are")
    return df, warnings


def merge_over(base: pd.DataFrame, tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """`base` with rows of `tables` replacing those of the same offer id (later tables win)."""
    tables = [t for t in tables if t is not None and not t.empty]
    if not tables:
        return base.reset_index(drop=True)
    newer = pd.concat(tables, ignore_index=True).drop_duplicates(ot.OFFER, keep="last")
    kept = base[~base[ot.OFFER].isin(set(newer[ot.OFFER]))]
    merged = pd.concat([kept, newer], ignore_index=True)
    cloud = merged[merged[ot.TIER] == "cloud"].sort_values(
        [ot.PROVIDER, ot.INSTANCE_TYPE, ot.REGION], kind="stable")
    edge = merged[merged[ot.TIER] != "cloud"]
    return pd.concat([cloud, edge], ignore_index=True)


def load_offers(providers: Iterable[str] | None = None, regions: Iterable[str] | None = None,
                *, max_age_days: int | None = None, today: date | None = None
                ) -> tuple[pd.DataFrame, list[str]]:
    """The offers to plan with: cached fetches over the embedded snapshot, and warnings.

    - providers: "aws", "azure", "edge" (None: all). regions filter cloud offers only; edge
      devices (region "site") stay unless `providers` leaves out "edge".
    - max_age_days: warn about every price date older than that (counted to `today`).
    Works offline; a cache file that cannot be read is skipped with a warning.
    """
    from pricing.snapshot import load_snapshot

    providers = None if providers is None else list(providers)
    regions = None if regions is None else list(regions)
    warnings: list[str] = []
    tables = []
    for provider, region in cached_regions(providers):
        if regions is not None and region not in regions:
            continue
        df, w = read_cached(provider, region)
        warnings += w
        tables.append(df)
    offers = merge_over(load_snapshot(), tables)
    keep = pd.Series(True, index=offers.index)
    if providers is not None:
        keep &= offers[ot.PROVIDER].isin(providers)
    if regions is not None:
        keep &= (offers[ot.TIER] != "cloud") | offers[ot.REGION].isin(regions)
    offers = ot.validate_offer_table(offers[keep].reset_index(drop=True), origin="offers")
    if max_age_days is not None:
        for day in sorted(set(offers[ot.PRICE_DATE].astype(str))):
            w = stale_price_warning(day, max_age_days, today)
            if w:
                warnings.append(w)
    return offers, warnings
