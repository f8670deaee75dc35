"""The embedded, dated price snapshot: cloud list prices plus the edge device catalog.

Read-only data shipped inside the package (`pricing/data/*.csv`), loaded through
importlib.resources so it works from a wheel. `data/compile_cloud_snapshot.py` and
docs/pricing.md say where every number comes from.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

from pricing import table as ot
from pricing.edge import edge_offers

CLOUD_SNAPSHOT = "data/cloud_snapshot.csv"


def load_cloud_snapshot() -> pd.DataFrame:
    """Only the cloud offers of the snapshot, validated."""
    return _cloud().copy()


def load_snapshot() -> pd.DataFrame:
    """Cloud offers and edge devices as one validated `OfferTable` (a fresh copy per call)."""
    return _snapshot().copy()


def snapshot_date() -> str:
    """The ISO date the cloud snapshot was compiled."""
    dates = sorted(set(_cloud()[ot.PRICE_DATE]))
    if len(dates) != 1:
        raise ValueError(f"{CLOUD_SNAPSHOT}: expected one price_date, found {dates}")
    return dates[0]


@lru_cache(maxsize=1)
def _cloud() -> pd.DataFrame:
    with resources.files("pricing").joinpath(CLOUD_SNAPSHOT).open("rb") as f:
        df = pd.read_csv(f, dtype={ot.PRICE_DATE: str})
    return ot.validate_offer_table(df, origin=CLOUD_SNAPSHOT)


@lru_cache(maxsize=1)
def _snapshot() -> pd.DataFrame:
    both = pd.concat([_cloud(), edge_offers()], ignore_index=True)
    return ot.validate_offer_table(both, origin="price snapshot")
