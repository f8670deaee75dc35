"""Internet egress list prices per provider, as consecutive monthly volume tiers.

`data/egress.json` holds each provider's tiers as (width in GB, USD per GB), cheapest-first in
volume order, with the last tier unbounded; its date and sources travel with it. The functions
here are pure arithmetic over those tiers.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

Tier = tuple[float, float]  # (width_gb, usd_per_gb); the last width is math.inf


@lru_cache(maxsize=1)
def _data() -> dict:
    with resources.files("pricing").joinpath("data/egress.json").open("rb") as f:
        return json.load(f)


def _provider(provider: str) -> dict:
    providers = _data()["providers"]
    if provider not in providers:
        known = ", ".join(providers)
        raise KeyError(f"no egress prices for provider {provider!r} (known: {known})")
    return providers[provider]


def providers() -> list[str]:
    return sorted(_data()["providers"])


def egress_date() -> str:
    return str(_data()["price_date"])


def egress_tiers(provider: str) -> tuple[Tier, ...]:
    """Consecutive (width_gb, usd_per_gb) tiers; the last width is infinite."""
    return tuple(
        (math.inf if t["width_gb"] is None else float(t["width_gb"]), float(t["usd_per_gb"]))
        for t in _provider(provider)["tiers"]
    )


def egress_source(provider: str) -> str:
    return f"{_provider(provider)['source']} (list prices as of {egress_date()})"


def tiered_cost_usd(tiers, gb: float) -> float:
    """Cost of `gb` under consecutive (width_gb, usd_per_gb) tiers; the last width may be inf."""
    cost, left = 0.0, float(gb)
    for width, price in tiers:
        used = min(left, width)
        cost += used * price
        left -= used
        if left <= 0:
            break
    return cost


def monthly_egress_usd(provider: str, gb_per_month: float) -> float:
    """List price of `gb_per_month` GB leaving `provider`'s cloud for the internet in a month."""
    if gb_per_month < 0:
        raise ValueError("gb_per_month must be >= 0")
    return tiered_cost_usd(egress_tiers(provider), gb_per_month)


def marginal_egress_usd_per_gb(provider: str, gb_per_month: float) -> float:
    """Price of the next GB once `gb_per_month` GB have already left this month."""
    if gb_per_month < 0:
        raise ValueError("gb_per_month must be >= 0")
    start = 0.0
    for width, price in egress_tiers(provider):
        if gb_per_month < start + width:
            return price
        start += width
    return egress_tiers(provider)[-1][1]  # pragma: no cover - the last tier is unbounded


def inter_region_usd_per_gb(provider: str, from_region: str, to_region: str) -> float | None:
    """Published price per GB sent from one region to another of the same provider (charged to
    the sender, free to receive); 0 within a region; None when no group of the embedded data
    holds both regions (the caller bills such a link at the internet tiers, an upper bound)."""
    if from_region == to_region:
        return 0.0
    groups = _provider(provider).get("inter_region", {}).get("groups", [])
    rates = [float(g["usd_per_gb"]) for g in groups
             if from_region in g["regions"] and to_region in g["regions"]]
    return min(rates) if rates else None


def inter_region_source(provider: str) -> str:
    data = _provider(provider).get("inter_region")
    if not data:
        return f"no published inter-region rate for {provider}: billed at its internet tiers"
    return f"{data['source']} (list prices as of {egress_date()})"
