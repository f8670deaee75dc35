"""This machine as an offer: an edge device and a cloud offer whose hardware class is this
machine's (`profiles.hardware.local_hardware_name()`, e.g. `x86-zen4-2c`), at prices the user
gives. Written as an offers CSV that `placement plan|verify --offers` reads (docs/verify.md), so a
plan made against it runs here under `placement verify`.

The edge device is `this-machine` (offer `edge:this-machine`); the cloud offer is instance type
`this-machine` in provider `local`, region `here` (offer `local:here:this-machine`).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd

from pricing import table as ot

DEVICE = "this-machine"
# the spec knows the providers aws and azure (their egress prices apply to what leaves it)
PROVIDER, REGION = "aws", "local"
EDGE_OFFER, CLOUD_OFFER = f"edge:{DEVICE}", f"{PROVIDER}:{REGION}:{DEVICE}"


def this_machine_offers(*, unit_usd: float = 500.0, power_w: float = 30.0,
                        hourly_usd: float = 0.10, memory_gib: float | None = None) -> pd.DataFrame:
    """Two offers on this machine's hardware class: an edge device at `unit_usd` (and `power_w`)
    and a cloud instance at `hourly_usd` (spot and reserved left empty)."""
    from profiles.hardware import local_hardware

    hw = local_hardware()
    if memory_gib is None:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    arch = hw.arch
    today = date.today().isoformat()
    common = {ot.INSTANCE_TYPE: DEVICE, ot.HARDWARE: hw.name, ot.VCPUS: hw.cores,
              ot.MEMORY_GIB: memory_gib, ot.ACCELERATOR: None, ot.ACCELERATOR_COUNT: 0,
              ot.ARCH: arch, ot.SPOT_HOURLY_USD: None, ot.RESERVED_1Y_HOURLY_USD: None,
              ot.RESERVED_3Y_HOURLY_USD: None, ot.PRICE_SOURCE: "user-given (this machine)",
              ot.PRICE_DATE: today}
    rows = [
        {**common, ot.OFFER: EDGE_OFFER, ot.TIER: "edge", ot.PROVIDER: "edge", ot.REGION: "site",
         ot.HOURLY_USD: None, ot.UNIT_USD: unit_usd, ot.POWER_W: power_w},
        {**common, ot.OFFER: CLOUD_OFFER, ot.TIER: "cloud", ot.PROVIDER: PROVIDER, ot.REGION: REGION,
         ot.HOURLY_USD: hourly_usd, ot.UNIT_USD: None, ot.POWER_W: None},
    ]
    return pd.DataFrame(rows, columns=ot.OFFER_COLUMNS)


def write_this_machine_offers(path: str | Path, **prices) -> Path:
    path = Path(path)
    this_machine_offers(**prices).to_csv(path, index=False)
    return path
