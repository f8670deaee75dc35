"""The edge device catalog: boards bought once per site, priced per unit with a power draw busy
and (where published) idle.

`data/edge_devices.csv` is the embedded catalog (one row per device model, with where its unit
price and power figure come from); `edge_offers` turns it into `OfferTable` rows (tier edge,
provider "edge", region "site", offer id `edge:<device>`).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from pricing import table as ot

DEVICE = "device"
NAME = "name"
POWER_SOURCE = "power_source"
IDLE_POWER_SOURCE = "idle_power_source"
EDGE_DEVICE_COLUMNS = [
    DEVICE, NAME, ot.UNIT_USD, ot.POWER_W, ot.IDLE_POWER_W, ot.MEMORY_GIB, ot.VCPUS, ot.ARCH,
    ot.ACCELERATOR, ot.ACCELERATOR_COUNT, ot.HARDWARE, ot.PRICE_SOURCE, POWER_SOURCE,
    IDLE_POWER_SOURCE, ot.PRICE_DATE,
]
EDGE_PROVIDER = "edge"
EDGE_REGION = "site"


def load_edge_devices() -> pd.DataFrame:
    """The embedded device catalog, one row per device model."""
    with resources.files("pricing").joinpath("data/edge_devices.csv").open("rb") as f:
        df = pd.read_csv(f, dtype={ot.PRICE_DATE: str})
    missing = [c for c in EDGE_DEVICE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"edge_devices.csv: missing column(s) {', '.join(missing)}")
    return df[EDGE_DEVICE_COLUMNS]


def edge_offers(devices: pd.DataFrame | None = None) -> pd.DataFrame:
    """Devices as `OfferTable` rows; the power figures' origins are appended to `price_source`."""
    devices = load_edge_devices() if devices is None else devices
    offers = pd.DataFrame({
        ot.OFFER: devices[DEVICE].map(ot.edge_offer_id),
        ot.TIER: "edge",
        ot.PROVIDER: EDGE_PROVIDER,
        ot.REGION: EDGE_REGION,
        ot.INSTANCE_TYPE: devices[DEVICE],
        ot.HARDWARE: devices[ot.HARDWARE],
        ot.VCPUS: devices[ot.VCPUS],
        ot.MEMORY_GIB: devices[ot.MEMORY_GIB],
        ot.ACCELERATOR: devices[ot.ACCELERATOR],
        ot.ACCELERATOR_COUNT: devices[ot.ACCELERATOR_COUNT],
        ot.ARCH: devices[ot.ARCH],
        ot.HOURLY_USD: float("nan"),
        ot.SPOT_HOURLY_USD: float("nan"),
        ot.RESERVED_1Y_HOURLY_USD: float("nan"),
        ot.RESERVED_3Y_HOURLY_USD: float("nan"),
        ot.UNIT_USD: devices[ot.UNIT_USD],
        ot.POWER_W: devices[ot.POWER_W],
        ot.IDLE_POWER_W: devices[ot.IDLE_POWER_W],
        ot.PRICE_SOURCE: (devices[ot.PRICE_SOURCE] + "; power: " + devices[POWER_SOURCE]
                          + "; idle power: " + devices[IDLE_POWER_SOURCE]),
        ot.PRICE_DATE: devices[ot.PRICE_DATE],
    })
    return ot.validate_offer_table(offers, origin="edge_devices.csv")
