"""The team's own prices: negotiated discounts per provider, and a CSV of per-offer prices.

`apply_overrides` reads a CSV with an `offer` column plus any of the price columns below;
an empty cell keeps the current value. Edge devices are edited the same way (unit_usd,
power_w busy, idle_power_w). The changed rows' `price_source` becomes "override: <file>". `apply_discounts`
lowers every cloud price column of a provider by a percentage (edge: the unit price).
Both return a new table and raise `OfferTableError` with one line naming the file, row and
column of anything they cannot use.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pricing import table as ot
from pricing.query import HOURLY_COLUMNS

CLOUD_COLUMNS = HOURLY_COLUMNS  # on-demand, spot, reserved 1y / 3y
EDGE_COLUMNS = [ot.UNIT_USD, ot.POWER_W, ot.IDLE_POWER_W]
OVERRIDE_COLUMNS = [*CLOUD_COLUMNS, *EDGE_COLUMNS]


def apply_discounts(offers: pd.DataFrame, discount_percent: dict[str, float]) -> pd.DataFrame:
    """A copy with each provider's prices lowered by its percentage; providers with no offers
    in the table are ignored. `price_source` gains " less N% negotiated discount"."""
    out = offers.copy()
    for column in (*CLOUD_COLUMNS, ot.UNIT_USD):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    for provider, percent in discount_percent.items():
        try:
            percent = float(percent)
        except (TypeError, ValueError):
            raise ot.OfferTableError(
                f"discount_percent[{provider}]: {percent!r} is not a number") from None
        if not 0 <= percent < 100:
            raise ot.OfferTableError(
                f"discount_percent[{provider}]: {percent:g} is not in [0, 100)")
        mine = out[ot.PROVIDER] == provider
        if not mine.any() or percent == 0:
            continue
        factor = 1.0 - percent / 100.0
        columns = [ot.UNIT_USD] if provider == "edge" else CLOUD_COLUMNS
        for column in columns:
            out.loc[mine, column] = out.loc[mine, column] * factor
        out.loc[mine, ot.PRICE_SOURCE] = (out.loc[mine, ot.PRICE_SOURCE].astype(str)
                                          + f" less {percent:g}% negotiated discount")
    return out


def _read(csv_path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise ot.OfferTableError(f"{csv_path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ot.OfferTableError(f"{csv_path}: not a readable CSV ({first})") from None


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ot.OfferTableError(f"{where}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ot.OfferTableError(f"{where}, column {column}: {text!r} must be a positive number")
    return value


def apply_overrides(offers: pd.DataFrame, csv_path: Path) -> pd.DataFrame:
    """A copy with the prices of `csv_path` put in; see the module docstring for the format."""
    csv_path = Path(csv_path)
    table = _read(csv_path)
    table.columns = [str(c).strip() for c in table.columns]
    if ot.OFFER not in table.columns:
        raise ot.OfferTableError(f"{csv_path}: no '{ot.OFFER}' column")
    unknown = [c for c in table.columns if c != ot.OFFER and c not in OVERRIDE_COLUMNS]
    if unknown:
        raise ot.OfferTableError(f"{csv_path}: unknown column(s) {', '.join(unknown)} (allowed: "
                                 f"{', '.join([ot.OFFER, *OVERRIDE_COLUMNS])})")
    out = offers.copy()
    for column in OVERRIDE_COLUMNS:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    index = {offer: i for i, offer in zip(out.index, out[ot.OFFER])}
    seen: set[str] = set()
    source = f"override: {csv_path}"
    for n, (_, row) in enumerate(table.iterrows(), 1):
        where = f"{csv_path}: row {n}"
        offer = str(row[ot.OFFER]).strip()
        if not offer:
            raise ot.OfferTableError(f"{where}, column {ot.OFFER}: empty offer id")
        if offer not in index:
            raise ot.OfferTableError(f"{where}, column {ot.OFFER}: unknown offer {offer!r}")
        if offer in seen:
            raise ot.OfferTableError(f"{where}, column {ot.OFFER}: offer {offer!r} appears twice")
        seen.add(offer)
        i = index[offer]
        is_cloud = out.at[i, ot.TIER] == "cloud"
        changed = False
        for column in table.columns:
            text = str(row[column]).strip()
            if column == ot.OFFER or not text:
                continue
            allowed = CLOUD_COLUMNS if is_cloud else EDGE_COLUMNS
            if column not in allowed:
                tier = "cloud" if is_cloud else "edge"
                raise ot.OfferTableError(f"{where}, column {column}: does not apply to {tier} "
                                         f"offer {offer!r} (use {', '.join(allowed)})")
            out.at[i, column] = _number(text, where, column)
            changed = True
        if changed:
            out.at[i, ot.PRICE_SOURCE] = source
    return ot.validate_offer_table(out, origin=str(csv_path))
