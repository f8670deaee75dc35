"""Pure queries over an `OfferTable`: the table comes first, nothing is read or cached here.

A GPU offer is one whose accelerator is an NVIDIA GPU (accelerator name starting with
"nvidia"), the rule `placement.problem.candidate_offers` uses too; Inferentia is an
accelerator but not a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from pricing import table as ot

HOURLY_COLUMNS = [
    ot.HOURLY_USD, ot.SPOT_HOURLY_USD, ot.RESERVED_1Y_HOURLY_USD, ot.RESERVED_3Y_HOURLY_USD,
]


def _price_column(pricing_model: str) -> str:
    if pricing_model not in ot.PRICING_MODELS:
        known = ", ".join(ot.PRICING_MODELS)
        raise ValueError(f"unknown pricing model {pricing_model!r} (known: {known})")
    return ot.PRICING_MODELS[pricing_model]


def has_gpu(df: pd.DataFrame) -> pd.Series:
    """True where the offer carries an NVIDIA GPU."""
    return df[ot.ACCELERATOR].fillna("").astype(str).str.startswith("nvidia")


def price_for_model(df: pd.DataFrame, pricing_model: str) -> pd.Series:
    """Hourly USD of each offer under on-demand / spot / reserved-1y / reserved-3y; NaN where
    unknown (and for edge devices, which have a unit price instead)."""
    return pd.to_numeric(df[_price_column(pricing_model)], errors="coerce").rename(pricing_model)


def select_offers(
    df: pd.DataFrame,
    *,
    providers: Iterable[str] | None = None,
    regions: Iterable[str] | None = None,
    instance_types: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
    gpu: bool | None = None,
    max_hourly: float | None = None,
    pricing_model: str = "on-demand",
) -> pd.DataFrame:
    """The offers matching every filter given (None = no filter on that column).

    - providers: "aws", "azure", "edge".
    - regions: matched against the region column (edge devices are in region "site").
    - instance_types / devices: naming either selects only what is named: cloud offers of
      those instance types and/or edge offers of those devices.
    - gpu: True keeps only GPU offers, False only offers without one.
    - max_hourly: cloud offers priced at most this under `pricing_model`; edge devices have no
      hourly price and are not affected.
    - pricing_model: cloud offers with no known price under it are dropped.
    """
    column = _price_column(pricing_model)
    keep = pd.Series(True, index=df.index)
    if providers is not None:
        keep &= df[ot.PROVIDER].isin(list(providers))
    if regions is not None:
        keep &= df[ot.REGION].isin(list(regions))
    if instance_types is not None or devices is not None:
        cloud = (df[ot.TIER] == "cloud") & df[ot.INSTANCE_TYPE].isin(list(instance_types or []))
        edge = (df[ot.TIER] == "edge") & df[ot.INSTANCE_TYPE].isin(list(devices or []))
        keep &= cloud | edge
    if gpu is not None:
        keep &= has_gpu(df) if gpu else ~has_gpu(df)
    is_cloud = df[ot.TIER] == "cloud"
    price = pd.to_numeric(df[column], errors="coerce")
    keep &= ~is_cloud | price.notna()
    if max_hourly is not None:
        keep &= ~is_cloud | (price <= max_hourly)
    return df[keep].reset_index(drop=True)


def apply_discount(df: pd.DataFrame, provider: str, percent: float) -> pd.DataFrame:
    """A copy with `provider`'s prices lowered by `percent` (e.g. a negotiated discount).

    Every hourly price column of that provider's cloud offers is scaled (on-demand, spot and
    reserved); for the edge "provider" the unit price is. `price_source` says so.
    """
    if not 0 <= percent < 100:
        raise ValueError("percent must be in [0, 100)")
    mine = df[ot.PROVIDER] == provider
    if not mine.any():
        raise ValueError(f"no offers from provider {provider!r}")
    out = df.copy()
    factor = 1.0 - percent / 100.0
    columns = [ot.UNIT_USD] if provider == "edge" else HOURLY_COLUMNS
    for column in columns:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
        out.loc[mine, column] = out.loc[mine, column] * factor
    out.loc[mine, ot.PRICE_SOURCE] = out.loc[mine, ot.PRICE_SOURCE].astype(str) + (
        f"; less a {percent:g}% discount")
    return out
