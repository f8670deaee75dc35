"""Azure prices: the public Retail Prices API, and specs from the Resource SKUs API.

- Prices: https://prices.azure.com/api/retail/prices (no credentials needed) with
  `$filter=serviceName eq 'Virtual Machines' and priceType eq '<Consumption|Reservation>' and
  armRegionName eq '<region>'`, following `NextPageLink`. Windows rows (productName contains
  "Windows"), Cloud Services rows and low-priority rows are dropped; a skuName ending in
  " Spot" is the spot price; reservation rows ("1 Year" / "3 Years") price the whole term, so
  they are divided by 8,760 or 26,280 hours. A 429 or 5xx answer is retried after its
  Retry-After (or an exponential back-off).
- Specs: azure-mgmt-compute `resource_skus.list(filter="location eq '<region>'")` (capabilities
  vCPUs, MemoryGB, GPUs, CpuArchitectureType) with azure-identity's `DefaultAzureCredential`
  and `AZURE_SUBSCRIPTION_ID`. Without them prices still come from the public API and specs
  from the embedded snapshot (sizes it does not know are dropped with a warning).

`download` returns the raw responses (`Recorded`); `normalise` is pure and shared with
`python -m pricing.build_snapshot`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import urlparse

import pandas as pd

from pricing import table as ot
from pricing.fetch import (
    FetchResult,
    PriceFetchError,
    Progress,
    backoff_s,
    default_sleep,
    iso,
    offer_row,
    offers_frame,
    snapshot_instance_types,
    snapshot_specs,
    summarise,
    utc_now,
)
from pricing.hardware_map import hardware_for, hardware_kind

PROVIDER = "azure"
RETAIL_URL = "https://prices.azure.com/api/retail/prices"
PRICE_TYPES = ("Consumption", "Reservation")
SUBSCRIPTION_ENV = "AZURE_SUBSCRIPTION_ID"
HOURS = {"1 Year": 8760.0, "3 Years": 26280.0}
RETRIES = 5
MAX_PAGES = 2000
TIMEOUT_S = 60
SOURCE = "Azure Retail Prices API (Linux; reserved: 1/3-year reservations) and Resource SKUs"


@dataclass
class Recorded:
    """The raw responses of one region's download."""

    region: str
    fetched_at: str
    retail_items: list = field(default_factory=list)  # Retail Prices API `Items`, all pages
    resource_skus: list | None = None  # [{name, resourceType, capabilities: [{name, value}]}]
    instance_types: list | None = None  # the sizes asked for; None = every size listed
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Recorded:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --- the network part --------------------------------------------------------------------------


def retail_filter(region: str, price_type: str) -> str:
    return (f"serviceName eq 'Virtual Machines' and priceType eq '{price_type}' "
            f"and armRegionName eq '{region}'")


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests failure, short (not the whole retried URL)."""
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    text = str(reason).split(": ", 1)[-1] if not isinstance(reason, str) else reason
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}"


def _get_page(session, url: str, params: dict | None, sleep, retries: int = RETRIES) -> dict:
    import requests

    for attempt in range(retries + 1):
        try:
            resp = session.get(url, params=params, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise PriceFetchError(f"azure: cannot reach the Retail Prices API at "
                                  f"{urlparse(url).hostname} ({_reason(exc)})") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            if attempt == retries:
                raise PriceFetchError(f"azure: Retail Prices API answered HTTP "
                                      f"{resp.status_code} {retries + 1} times; giving up")
            try:
                wait = float(resp.headers.get("Retry-After", ""))
            except ValueError:
                wait = backoff_s(attempt)
            sleep(min(max(wait, 0.0), 120.0))
            continue
        if resp.status_code != 200:
            raise PriceFetchError(f"azure: Retail Prices API answered HTTP {resp.status_code}: "
                                  f"{resp.text[:200].strip()}")
        try:
            page = resp.json()
        except ValueError:
            raise PriceFetchError("azure: Retail Prices API answered with something other than "
                                  "JSON") from None
        if not isinstance(page, dict):
            raise PriceFetchError("azure: Retail Prices API page is not a JSON object")
        return page
    raise AssertionError("unreachable")  # pragma: no cover


def retail_items(region: str, *, session=None, sleep: Callable[[float], None] = default_sleep,
                 on_progress: Progress | None = None) -> list:
    """Every Retail Prices API item for VMs in `region`, consumption then reservation rows."""
    import requests

    session = session or requests.Session()
    say = on_progress or (lambda _msg: None)
    items: list = []
    for price_type in PRICE_TYPES:
        url, params = RETAIL_URL, {"$filter": retail_filter(region, price_type)}
        seen: set[str] = set()
        for n in range(1, MAX_PAGES + 1):
            say(f"azure {region}: {price_type.lower()} prices, page {n} ({len(items)} rows)")
            page = _get_page(session, url, params, sleep)
            page_items = page.get("Items") or []
            if not isinstance(page_items, list):
                raise PriceFetchError("azure: Retail Prices API page has no Items list")
            items.extend(page_items)
            link = page.get("NextPageLink")
            if not link or link in seen:
                break
            seen.add(link)
            url, params = link, None
    return items


def _sku_dict(sku) -> dict:
    return {
        "name": sku.name,
        "resourceType": sku.resource_type,
        "capabilities": [{"name": c.name, "value": c.value} for c in (sku.capabilities or [])],
    }


def resource_skus(region: str, *, credential=None, subscription_id: str | None = None,
                  client=None) -> tuple[list | None, str | None]:
    """VM sizes of `region` from the Resource SKUs API, or (None, why not)."""
    subscription_id = subscription_id or os.environ.get(SUBSCRIPTION_ENV)
    if client is None and not subscription_id:
        return None, f"{SUBSCRIPTION_ENV} not set"
    try:
        from azure.core.exceptions import AzureError
    except ImportError:  # pragma: no cover - azure-core is a dependency
        return None, "azure-core is not installed"
    try:
        if client is None:
            try:
                from azure.identity import DefaultAzureCredential
                from azure.mgmt.compute import ComputeManagementClient
            except ImportError as exc:
                return None, f"{exc.name} is not installed"
            credential = credential or DefaultAzureCredential()
            client = ComputeManagementClient(credential, subscription_id)
        skus = [_sku_dict(s) for s in client.resource_skus.list(filter=f"location eq '{region}'")
                if s.resource_type == "virtualMachines"]
    except AzureError as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return skus, None


def download(region: str, instance_types: Iterable[str] | None, *, session=None,
             credential=None, subscription_id: str | None = None, compute_client=None,
             sleep: Callable[[float], None] = default_sleep, on_progress: Progress | None = None,
             now: datetime | None = None) -> Recorded:
    """Retail prices (required) and resource SKUs (best effort) of `region`."""
    now = now or utc_now()
    rec = Recorded(region=region, fetched_at=iso(now),
                   instance_types=None if instance_types is None else list(instance_types))
    rec.retail_items = retail_items(region, session=session, sleep=sleep,
                                    on_progress=on_progress)
    if on_progress:
        on_progress(f"azure {region}: VM sizes (resource SKUs)")
    rec.resource_skus, why = resource_skus(region, credential=credential,
                                           subscription_id=subscription_id,
                                           client=compute_client)
    if why:
        rec.notes.append(f"azure {region}: no resource SKU specs ({why}); specs from the "
                         f"embedded snapshot")
    return rec


def fetch_offers(region: str, *, instance_types: Iterable[str] | None = None,
                 on_progress: Progress | None = None, session=None, credential=None,
                 subscription_id: str | None = None, compute_client=None,
                 sleep: Callable[[float], None] = default_sleep,
                 now: datetime | None = None) -> FetchResult:
    """Current prices of `instance_types` (default: the sizes the snapshot knows) in `region`."""
    types = list(instance_types) if instance_types else snapshot_instance_types(PROVIDER)
    rec = download(region, types, session=session, credential=credential,
                   subscription_id=subscription_id, compute_client=compute_client, sleep=sleep,
                   on_progress=on_progress, now=now)
    offers, warnings = normalise(rec, fallback_specs=snapshot_specs(PROVIDER))
    if offers.empty:
        raise PriceFetchError(f"azure {region}: the Retail Prices API listed no usable Linux "
                              f"prices for {summarise(types)}")
    return FetchResult(provider=PROVIDER, region=region, offers=offers,
                       fetched_at=rec.fetched_at, source=SOURCE, warnings=warnings)


# --- the pure part -----------------------------------------------------------------------------


class _Malformed(ValueError):
    pass


@dataclass
class SizePrices:
    hourly: float = math.nan
    spot: float = math.nan
    reserved_1y: float = math.nan
    reserved_3y: float = math.nan


def _rank(item: dict) -> tuple:
    """Among duplicate meters prefer the primary meter region, then the newest price."""
    return (bool(item.get("isPrimaryMeterRegion", True)), str(item.get("effectiveStartDate", "")))


def classify(item) -> tuple[str, str] | None:
    """(armSkuName, column) of a usable item; None for rows that are dropped on purpose
    (Windows, Cloud Services, low priority, dev/test); `_Malformed` for broken ones."""
    if not isinstance(item, dict):
        raise _Malformed("not a JSON object")
    product, sku_name = str(item.get("productName", "")), str(item.get("skuName", ""))
    if "Windows" in product or "Cloud Services" in product:
        return None
    if sku_name.endswith("Low Priority"):
        return None
    if item.get("serviceName", "Virtual Machines") != "Virtual Machines":
        return None
    arm = item.get("armSkuName")
    if not arm or not isinstance(arm, str):
        raise _Malformed(f"no armSkuName (skuName {sku_name!r})")
    if item.get("currencyCode", "USD") != "USD":
        raise _Malformed(f"{arm}: currency {item.get('currencyCode')!r}, not USD")
    price_type = item.get("type")
    if price_type == "Consumption":
        unit = str(item.get("unitOfMeasure", "1 Hour"))
        if unit != "1 Hour":
            raise _Malformed(f"{arm}: unit {unit!r}, not '1 Hour'")
        return arm, ("spot" if sku_name.endswith(" Spot") else "hourly")
    if price_type == "Reservation":
        term = item.get("reservationTerm")
        if term not in HOURS:
            raise _Malformed(f"{arm}: reservation term {term!r}")
        return arm, "reserved_1y" if term == "1 Year" else "reserved_3y"
    if price_type == "DevTestConsumption":
        return None
    raise _Malformed(f"{arm}: price type {price_type!r}")


def _price(item: dict, column: str) -> float:
    raw = item.get("unitPrice", item.get("retailPrice"))
    try:
        price = float(raw)
    except (TypeError, ValueError):
        raise _Malformed(f"{item.get('armSkuName')}: price {raw!r} is not a number") from None
    if not math.isfinite(price) or price <= 0:
        raise _Malformed(f"{item.get('armSkuName')}: price {raw!r} is not positive")
    if column.startswith("reserved"):
        price /= HOURS[item["reservationTerm"]]
    return price


def parse_retail_items(items: Iterable, region: str) -> tuple[dict[str, SizePrices], list[str]]:
    """Prices per VM size; malformed items are skipped with a warning."""
    chosen: dict[tuple[str, str], dict] = {}
    warnings: list[str] = []
    for n, item in enumerate(items, 1):
        try:
            kept = classify(item)
            if kept is None:
                continue
            _price(item, kept[1])  # checks the number before the item can be chosen
        except _Malformed as exc:
            warnings.append(f"azure {region}: skipped malformed retail price item #{n}: {exc}")
            continue
        if item.get("armRegionName", region) != region:
            continue
        if kept not in chosen or _rank(item) > _rank(chosen[kept]):
            chosen[kept] = item
    sizes: dict[str, SizePrices] = {}
    for (arm, column), item in chosen.items():
        setattr(sizes.setdefault(arm, SizePrices()), column, _price(item, column))
    return sizes, warnings


def specs_from_resource_sku(sku: dict) -> dict:
    caps = {c.get("name"): c.get("value") for c in sku.get("capabilities") or []}
    specs = {ot.VCPUS: int(caps["vCPUs"]), ot.MEMORY_GIB: float(caps["MemoryGB"])}
    specs[ot.ACCELERATOR_COUNT] = int(float(caps.get("GPUs") or 0))
    cpu = str(caps.get("CpuArchitectureType", "x64")).lower()
    specs[ot.ARCH] = "aarch64" if cpu.startswith("arm") else "x86_64"
    return specs


def parse_resource_skus(skus: Iterable[dict] | None, region: str
                        ) -> tuple[dict[str, dict], list[str]]:
    specs, warnings = {}, []
    for sku in skus or []:
        if sku.get("resourceType", "virtualMachines") != "virtualMachines":
            continue
        try:
            specs[sku["name"]] = specs_from_resource_sku(sku)
        except (KeyError, TypeError, ValueError) as exc:
            warnings.append(f"azure {region}: skipped resource SKU {sku.get('name', '?')} "
                            f"without usable capabilities ({type(exc).__name__}: {exc})")
    return specs, warnings


def normalise(rec: Recorded, *, price_date: str | None = None, source_prefix: str = "",
              fallback_specs: dict[str, dict] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Raw responses -> (`OfferTable` rows, warnings). Sizes with no pay-as-you-go price,
    no specs or no known hardware class are dropped; the last two with a warning."""
    region = rec.region
    date = price_date or rec.fetched_at[:10]
    warnings = list(rec.notes)
    sizes, w = parse_retail_items(rec.retail_items, region)
    warnings += w
    specs, w = parse_resource_skus(rec.resource_skus, region)
    warnings += w
    wanted = None if rec.instance_types is None else set(rec.instance_types)
    fallback = fallback_specs or {}
    rows, unmapped, no_specs = [], [], []
    for size, p in sorted(sizes.items()):
        if wanted is not None and size not in wanted:
            continue
        if not p.hourly > 0:
            continue  # only spot or reservation rows: not sold pay-as-you-go here
        spec = specs.get(size) or fallback.get(size)
        if spec is None:
            no_specs.append(size)
            continue
        hw = hardware_for(PROVIDER, size, spec)
        if hw is None:
            unmapped.append(size)
            continue
        below = {c: (v if v < p.hourly else math.nan)
                 for c, v in (("spot", p.spot), ("r1", p.reserved_1y), ("r3", p.reserved_3y))}
        source = (f"{source_prefix}Azure Retail Prices API, Linux pay-as-you-go"
                  f"{'; reservations /8760 h, /26280 h' if not math.isnan(below['r1']) else ''}"
                  f" (fetched {rec.fetched_at})")
        if not math.isnan(below["spot"]):
            source += "; spot: its spot meter price"
        if size not in specs:
            source += "; specs from the embedded snapshot"
        rows.append(offer_row(PROVIDER, region, size, hw, hardware_kind(hw), spec,
                              hourly=p.hourly, spot=below["spot"], reserved_1y=below["r1"],
                              reserved_3y=below["r3"], source=source, price_date=date))
    if wanted is not None:
        missing = wanted - set(sizes)
        if missing:
            warnings.append(f"azure {region}: no Linux price listed for {summarise(missing)}")
    if no_specs:
        warnings.append(f"azure {region}: dropped {len(no_specs)} size(s) with no specs: "
                        f"{summarise(no_specs)}")
    if unmapped:
        warnings.append(f"azure {region}: dropped {len(unmapped)} size(s) with no known "
                        f"hardware class: {summarise(unmapped)}")
    return offers_frame(rows, origin=f"azure {region} prices"), warnings
