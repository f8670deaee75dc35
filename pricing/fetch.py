"""Fetching live prices: the error type, the result every provider returns, and the registry.

One module per provider (`pricing.aws`, `pricing.azure`) with the same small set of
functions:

- `download(region, instance_types, ...) -> Recorded`: the network part (SDK / HTTP calls),
  returning the raw API responses, which can be saved to disk and replayed;
- `normalise(recorded, ...) -> (OfferTable rows, warnings)`: pure, shared with
  `python -m pricing.build_snapshot`, so the snapshot and a live refresh run the same code;
- `fetch_offers(region, ...) -> FetchResult`: the two together.

Nothing here prints or caches; `pricing.cache` stores what a fetch returns.
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from pricing.egress import Tier
from profiles.errors import UserError

PROVIDER_MODULES = {"aws": "pricing.aws", "azure": "pricing.azure"}

Progress = Callable[[str], None]  # receives short status lines ("aws us-east-1: c7a.large")


class PriceFetchError(UserError):
    """Live prices could not be fetched (no credentials, no network, an API error); `str()`
    is the one line shown to the user."""


@dataclass
class FetchResult:
    """Offers fetched for one provider and region, in `OfferTable` columns."""

    provider: str
    region: str
    offers: pd.DataFrame
    fetched_at: str  # ISO 8601, UTC
    source: str
    warnings: list[str] = field(default_factory=list)
    egress_tiers: tuple[Tier, ...] | None = None


def provider_module(provider: str):
    if provider not in PROVIDER_MODULES:
        known = ", ".join(PROVIDER_MODULES)
        raise PriceFetchError(f"no live price fetcher for provider {provider!r} (known: {known})")
    return importlib.import_module(PROVIDER_MODULES[provider])


def fetch_offers(provider: str, region: str, *, instance_types: Iterable[str] | None = None,
                 on_progress: Progress | None = None) -> FetchResult:
    """Fetch current prices of `provider` in `region` through its module (network)."""
    return provider_module(provider).fetch_offers(
        region, instance_types=instance_types, on_progress=on_progress)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).replace(microsecond=0).isoformat()


def summarise(names: Iterable[str], limit: int = 12) -> str:
    """`a, b, c (+5 more)`: a warning names what it is about without growing without bound."""
    names = sorted(set(names))
    head = ", ".join(names[:limit])
    return head + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def backoff_s(attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Exponential back-off with jitter: ~1, 2, 4, 8 … seconds, at most `cap`."""
    return min(cap, base * 2 ** attempt) * (0.5 + random.random() / 2)


def default_sleep(seconds: float) -> None:
    time.sleep(seconds)


def offer_row(provider: str, region: str, instance_type: str, hardware: str, kind: str,
              specs: dict, *, hourly: float, spot: float, reserved_1y: float,
              reserved_3y: float, source: str, price_date: str) -> dict:
    """One cloud `OfferTable` row; the accelerator of a GPU/NPU offer is its class name."""
    from pricing import table as ot

    nan = float("nan")
    accelerated = kind in ("gpu", "npu")
    return {
        ot.OFFER: ot.cloud_offer_id(provider, region, instance_type), ot.TIER: "cloud",
        ot.PROVIDER: provider, ot.REGION: region, ot.INSTANCE_TYPE: instance_type,
        ot.HARDWARE: hardware, ot.VCPUS: specs.get(ot.VCPUS, nan),
        ot.MEMORY_GIB: specs.get(ot.MEMORY_GIB, nan),
        ot.ACCELERATOR: hardware if accelerated else None,
        ot.ACCELERATOR_COUNT: int(specs.get(ot.ACCELERATOR_COUNT) or 0) if accelerated else 0,
        ot.ARCH: specs.get(ot.ARCH), ot.HOURLY_USD: hourly, ot.SPOT_HOURLY_USD: spot,
        ot.RESERVED_1Y_HOURLY_USD: reserved_1y, ot.RESERVED_3Y_HOURLY_USD: reserved_3y,
        ot.UNIT_USD: nan, ot.POWER_W: nan, ot.PRICE_SOURCE: source, ot.PRICE_DATE: price_date,
    }


def offers_frame(rows: list[dict], origin: str) -> pd.DataFrame:
    """Rows as a validated `OfferTable` (an empty one when there are none)."""
    from pricing import table as ot

    df = pd.DataFrame(rows, columns=ot.OFFER_COLUMNS)
    if not rows:
        return df
    df = df.sort_values([ot.PROVIDER, ot.INSTANCE_TYPE, ot.REGION]).reset_index(drop=True)
    return ot.validate_offer_table(df, origin=origin)


def snapshot_specs(provider: str) -> dict[str, dict]:
    """Specs of every instance type the embedded snapshot knows for `provider` (a fallback
    when the provider's spec API cannot be asked)."""
    from pricing import table as ot
    from pricing.snapshot import load_cloud_snapshot

    cloud = load_cloud_snapshot()
    cloud = cloud[cloud[ot.PROVIDER] == provider].drop_duplicates(ot.INSTANCE_TYPE)
    return {
        r[ot.INSTANCE_TYPE]: {ot.VCPUS: r[ot.VCPUS], ot.MEMORY_GIB: r[ot.MEMORY_GIB],
                              ot.ACCELERATOR_COUNT: r[ot.ACCELERATOR_COUNT], ot.ARCH: r[ot.ARCH]}
        for _, r in cloud.iterrows()
    }


def snapshot_instance_types(provider: str) -> list[str]:
    """The instance types the snapshot prices for `provider`: what a refresh fetches by default."""
    return sorted(snapshot_specs(provider))
