"""The `OfferTable` contract of DESIGN.md: column names declared once, here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiles.errors import UserError

OFFER = "offer"
TIER = "tier"
PROVIDER = "provider"
REGION = "region"
INSTANCE_TYPE = "instance_type"  # cloud instance type, or the edge device id
HARDWARE = "hardware"
VCPUS = "vcpus"
MEMORY_GIB = "memory_gib"
ACCELERATOR = "accelerator"
ACCELERATOR_COUNT = "accelerator_count"
ARCH = "arch"
HOURLY_USD = "hourly_usd"
SPOT_HOURLY_USD = "spot_hourly_usd"
RESERVED_1Y_HOURLY_USD = "reserved_1y_hourly_usd"
RESERVED_3Y_HOURLY_USD = "reserved_3y_hourly_usd"
UNIT_USD = "unit_usd"
POWER_W = "power_w"  # an edge device busy (all cores); what "full load around the clock" charges
IDLE_POWER_W = "idle_power_w"  # the same device idle; empty: not published (charged as busy)
PRICE_SOURCE = "price_source"
PRICE_DATE = "price_date"

OFFER_COLUMNS = [
    OFFER, TIER, PROVIDER, REGION, INSTANCE_TYPE, HARDWARE, VCPUS, MEMORY_GIB, ACCELERATOR,
    ACCELERATOR_COUNT, ARCH, HOURLY_USD, SPOT_HOURLY_USD, RESERVED_1Y_HOURLY_USD,
    RESERVED_3Y_HOURLY_USD, UNIT_USD, POWER_W, IDLE_POWER_W, PRICE_SOURCE, PRICE_DATE,
]
# Columns a table from outside may leave out (filled empty): added after tables were exported.
OPTIONAL_COLUMNS = [IDLE_POWER_W]
NUMERIC_COLUMNS = [
    VCPUS, MEMORY_GIB, ACCELERATOR_COUNT, HOURLY_USD, SPOT_HOURLY_USD, RESERVED_1Y_HOURLY_USD,
    RESERVED_3Y_HOURLY_USD, UNIT_USD, POWER_W, IDLE_POWER_W,
]
# No real offer comes near these; a larger number is a typo that would overflow the model's sums.
PLAUSIBLE_MAX = {
    VCPUS: 1e4, MEMORY_GIB: 1e5, ACCELERATOR_COUNT: 1e3, HOURLY_USD: 1e4, SPOT_HOURLY_USD: 1e4,
    RESERVED_1Y_HOURLY_USD: 1e4, RESERVED_3Y_HOURLY_USD: 1e4, UNIT_USD: 1e7, POWER_W: 1e5, IDLE_POWER_W: 1e5,
}
TIERS = ("edge", "cloud")
PRICING_MODELS = {
    "on-demand": HOURLY_USD,
    "spot": SPOT_HOURLY_USD,
    "reserved-1y": RESERVED_1Y_HOURLY_USD,
    "reserved-3y": RESERVED_3Y_HOURLY_USD,
}


class OfferTableError(UserError):
    """An offer table (usually a user's CSV) that the planner cannot use."""


def cloud_offer_id(provider: str, region: str, instance_type: str) -> str:
    return f"{provider}:{region}:{instance_type}"


def edge_offer_id(device: str) -> str:
    return f"edge:{device}"


def validate_offer_table(df: pd.DataFrame, origin: str = "offer table") -> pd.DataFrame:
    """Check a table from outside (CSV import) so bad rows fail with one line, not in the solver."""
    missing = [c for c in OFFER_COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise OfferTableError(f"{origin}: missing column(s) {', '.join(missing)}")
    df = df.reindex(columns=OFFER_COLUMNS).copy()
    for column in NUMERIC_COLUMNS:
        raw = df[column]
        df[column] = pd.to_numeric(raw, errors="coerce")
        given = raw.notna() & (raw.astype(str).str.strip() != "")
        tiny = (df[column] > 0) & (df[column] < 1e-9)  # a typo that would overflow a division
        bad = given & (df[column].isna() | ~np.isfinite(df[column].fillna(0.0)) | (df[column] < 0)
                       | (df[column] > PLAUSIBLE_MAX[column]) | tiny)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise OfferTableError(f"{origin}: row {row + 1}: column {column} must be a finite number "
                                  f">= 0 (at most {PLAUSIBLE_MAX[column]:g}) or empty, "
                                  f"got {raw.iloc[row]!r}")
    for column in (OFFER, TIER, PROVIDER, INSTANCE_TYPE, HARDWARE):
        blank = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if blank.any():
            row = int(blank.to_numpy().argmax())
            raise OfferTableError(f"{origin}: row {row + 1}: column {column} is empty")
    bad_tier = ~df[TIER].isin(TIERS)
    if bad_tier.any():
        row = int(bad_tier.idxmax())
        raise OfferTableError(f"{origin}: row {row + 1}: tier must be edge or cloud")
    cloud = df[TIER] == "cloud"
    bad_price = cloud & ~(df[HOURLY_USD] > 0)
    if bad_price.any():
        row = int(bad_price.idxmax())
        raise OfferTableError(f"{origin}: row {row + 1}: hourly_usd must be a positive number")
    edge = ~cloud
    bad_unit = edge & ~((df[UNIT_USD] > 0) & (df[POWER_W] > 0))
    if bad_unit.any():
        row = int(bad_unit.idxmax())
        raise OfferTableError(f"{origin}: row {row + 1}: unit_usd and power_w must be positive")
    bad_idle = edge & (df[IDLE_POWER_W] > df[POWER_W])
    if bad_idle.any():
        row = int(bad_idle.idxmax())
        raise OfferTableError(f"{origin}: row {row + 1}: idle_power_w must not exceed power_w (busy)")
    expected = [edge_offer_id(r[INSTANCE_TYPE]) if r[TIER] == "edge"
                else cloud_offer_id(r[PROVIDER], r[REGION], r[INSTANCE_TYPE])
                for r in df[[TIER, PROVIDER, REGION, INSTANCE_TYPE]].to_dict("records")]
    for row, (got, want) in enumerate(zip(df[OFFER], expected)):
        if got != want:
            raise OfferTableError(f"{origin}: row {row + 1}: offer must be {want!r} (edge:<device> or "
                                  f"provider:region:instance_type), got {got!r}")
    if df[OFFER].duplicated().any():
        dup = df.loc[df[OFFER].duplicated(), OFFER].iloc[0]
        raise OfferTableError(f"{origin}: offer {dup!r} appears twice")
    bad_memory = ~(df[MEMORY_GIB] > 0)
    if bad_memory.any():
        row = int(bad_memory.idxmax())
        raise OfferTableError(f"{origin}: row {row + 1}: memory_gib must be a positive number")
    return df.reset_index(drop=True)
