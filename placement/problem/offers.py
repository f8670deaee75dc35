"""The offers a spec allows, and the edge devices it would install at its sites."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from placement.spec import ApplicationSpec
from pricing import table as ot

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0


@dataclass(frozen=True)
class EdgeDevice:
    offer: str
    device: str
    memory_mb: float
    unit_usd: float
    power_w: float  # busy (all cores)
    capex_monthly_usd_per_site: float
    power_monthly_usd_per_site: float  # drawn whatever the load: idle (by use) or busy (full load)
    price_source: str
    price_date: str
    sites: int  # sites that have one (a fleet segment's sites, or all sites)
    segment: str | None = None  # the fleet segment it is installed in
    owned: bool = False  # already installed: capex is sunk, only power is charged
    owned_by: str = "operator"  # "users": the users' own devices (phones): no capex, no power
    idle_power_w: float | None = None  # None: not published, charged at `power_w`
    power_policy: str = "full-load"  # by-use | full-load (the spec's `edge.power`)
    # What one site's device adds to the power bill per unit of utilisation (by use): (busy -
    # idle) W around the clock. 0 under full load, for a device without an idle figure, or owned
    # by its users. A plan's options carry their share (`Option.power_monthly_usd`).
    busy_power_monthly_usd_per_site: float = 0.0

    @property
    def monthly_usd_per_site(self) -> float:
        return self.capex_monthly_usd_per_site + self.power_monthly_usd_per_site

    @property
    def monthly_usd(self) -> float:
        return self.monthly_usd_per_site * self.sites

    @property
    def label(self) -> str:
        return f"{self.device} ({self.segment})" if self.segment else self.device


def candidate_offers(spec: ApplicationSpec, offers: pd.DataFrame) -> pd.DataFrame:
    """The offers the spec allows: its edge devices and its cloud filters."""
    edge_ids = list(spec.hardware.edge) + [seg.device for seg in spec.fleet or []]
    parts = [offers[(offers[ot.TIER] == "edge") & offers[ot.INSTANCE_TYPE].isin(edge_ids)]]
    cloud = offers[offers[ot.TIER] == "cloud"]
    for cand in spec.hardware.cloud:
        sel = cloud[(cloud[ot.PROVIDER] == cand.provider) & cloud[ot.REGION].isin(cand.regions)]
        if cand.instance_types:
            sel = sel[sel[ot.INSTANCE_TYPE].isin(cand.instance_types)]
        if cand.gpu is not None:
            has_gpu = sel[ot.ACCELERATOR].fillna("").str.startswith("nvidia")
            sel = sel[has_gpu if cand.gpu else ~has_gpu]
        if cand.max_hourly_usd is not None:
            sel = sel[sel[ot.HOURLY_USD] <= cand.max_hourly_usd]
        parts.append(sel)
    return pd.concat(parts).drop_duplicates(ot.OFFER).reset_index(drop=True)


def edge_device(spec: ApplicationSpec, row: dict, *, sites: int, segment: str | None,
                owned: bool, owned_by: str = "operator") -> EdgeDevice:
    """One edge offer installed at `sites` sites: its amortised price and its power bill. A
    device its users own (`owned_by: users`, a phone) charges neither."""
    users = owned_by == "users"
    capex = 0.0 if owned or users else float(row[ot.UNIT_USD]) / spec.edge.amortisation_months
    busy_w = float(row[ot.POWER_W])
    idle_w = price(row, ot.IDLE_POWER_W) if ot.IDLE_POWER_W in row else None
    by_use = spec.edge.power == "by-use" and idle_w is not None
    usd_per_w = 0.0 if users else HOURS_PER_MONTH / 1000.0 * spec.edge.electricity_usd_per_kwh
    return EdgeDevice(
        idle_power_w=idle_w, power_policy=spec.edge.power,
        busy_power_monthly_usd_per_site=(busy_w - idle_w) * usd_per_w if by_use else 0.0,
        offer=row[ot.OFFER], device=row[ot.INSTANCE_TYPE],
        memory_mb=offer_memory_mb(row), unit_usd=float(row[ot.UNIT_USD]),
        power_w=busy_w, capex_monthly_usd_per_site=capex,
        power_monthly_usd_per_site=(idle_w if by_use else busy_w) * usd_per_w, price_source=str(row[ot.PRICE_SOURCE]),
        price_date=str(row[ot.PRICE_DATE]), sites=sites, segment=segment, owned=owned or users,
        owned_by=owned_by,
    )


def with_busy_power(options: dict, devices: dict) -> dict:
    """Each option that keeps a site device busy (an edge option, a split model's head) carries
    the power that busy share draws above idle at every site of that device: linear in the
    option, so the solver adds it like a price and the checker sums it per device."""
    out = {}
    for piece, opts in options.items():
        new = []
        for o in opts:
            dev = devices.get(o.device_offer) if o.device_offer is not None else None
            usd = dev.busy_power_monthly_usd_per_site * dev.sites * o.device_utilisation if dev else 0.0
            new.append(replace(o, power_monthly_usd=usd) if usd else o)
        out[piece] = tuple(new)
    return out


def offer_memory_mb(offer: dict) -> float:
    return float(offer[ot.MEMORY_GIB]) * 1024.0


def cloud_location(offer: dict) -> str:
    """Where a cloud offer's pool runs, as options and flows name it: `provider:region`."""
    return f"{offer[ot.PROVIDER]}:{offer[ot.REGION]}"


def price(row: dict, column: str) -> float | None:
    value = row[column]
    return None if value is None or pd.isna(value) else float(value)


def oldest_price_date(cands: pd.DataFrame) -> str:
    dates = sorted({str(d) for d in cands[ot.PRICE_DATE].dropna()})
    return dates[0] if dates else "unknown"


def why_no_option(piece: str, cands: pd.DataFrame, runtimes) -> str:
    """Why `piece` has no option, naming the one cause: no candidates, no profile rows at all,
    rows only on other hardware, rows only at other batches (not one call at the spec's input
    shapes), memory on every candidate, or else the load (utilisation cap).
    `runtimes`: the problem's `RuntimeIndex`."""
    if cands.empty:
        return "no candidate offers match the spec's hardware filters"
    profiled = runtimes.hardware_of(piece)
    if not profiled:
        return (f"no usable profile rows for {piece!r} at all (its measurements failed, or the "
                f"profiles given do not name it)")
    candidate_hw = set(cands[ot.HARDWARE])
    if not profiled & candidate_hw:
        return (f"no profile for {piece!r} on any candidate hardware "
                f"({', '.join(sorted(candidate_hw))})")
    ones = {hw: runtimes.batches(piece, hw).get(1, ()) for hw in profiled & candidate_hw}
    if not any(ones.values()):
        others = sorted({b for hw in profiled & candidate_hw for b in runtimes.batches(piece, hw)})
        return (f"profile rows for {piece!r} on candidate hardware are only at batch "
                f"{', '.join(map(str, others))}, none at batch 1 (one call at the spec's input shapes)")
    memory_mb = {hw: float(cands.loc[cands[ot.HARDWARE] == hw, ot.MEMORY_GIB].max()) * 1024.0
                 for hw in ones}
    if all(float(r["memory_mb"]) > memory_mb[hw] for hw, rows in ones.items() for r in rows):
        return "every candidate is too small (memory) for it"
    return "every candidate that can hold it is too slow for the load (utilisation cap)"
