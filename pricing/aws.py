"""AWS prices: the Price List Query API and EC2, through boto3's default credential chain.

- On-demand and reserved (standard, no upfront, 1 and 3 years) hourly prices:
  `pricing.get_products` for `AmazonEC2` in us-east-1 (the API's home), one paginated query per
  instance type with TERM_MATCH filters for Linux, shared tenancy, no pre-installed software,
  used capacity, no licence. Each PriceList item is a JSON string (product.attributes,
  terms.OnDemand / terms.Reserved -> priceDimensions -> pricePerUnit.USD).
- Specs: `ec2.describe_instance_types` (vCPUs, memory, GPUs, Neuron devices, architecture).
- Spot: `ec2.describe_spot_price_history` (Linux/UNIX, StartTime now) gives the current price
  per availability zone; the offer's spot price is the median over the region's regular zones
  (Local Zones excluded), left empty when not below on-demand — the snapshot's rule.
- Egress: `AWSDataTransfer` "AWS Outbound" to "External" tiers; the account-wide free 100 GB
  per month comes first.

`download` does the calls and returns the raw responses (`Recorded`, JSON-serialisable, so
`python -m pricing.build_snapshot` can record and replay them); `normalise` turns them into
`OfferTable` rows without touching the network.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime

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
from pricing.hardware_map import ACCELERATOR_NAME, hardware_for, hardware_kind

PROVIDER = "aws"
PRICING_API_REGION = "us-east-1"
EC2_SERVICE = "AmazonEC2"
EGRESS_SERVICE = "AWSDataTransfer"
EC2_TERMS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
}
SPOT_PRODUCTS = ["Linux/UNIX"]
FREE_EGRESS_GB = 100.0  # per month, shared by all of an account's services and regions
THROTTLE_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "SlowDown", "ServiceUnavailable", "InternalErrorException",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                "UnauthorizedException"}
RETRIES = 5
SOURCE = ("AWS Price List API (Linux, shared tenancy; reserved: standard, no upfront) and "
          "EC2 DescribeInstanceTypes")


@dataclass
class Recorded:
    """The raw responses of one region's download, as the APIs returned them."""

    region: str
    fetched_at: str
    price_list: list = field(default_factory=list)  # AmazonEC2 PriceList items (JSON strings)
    instance_types: list = field(default_factory=list)  # DescribeInstanceTypes InstanceTypes
    spot_price_history: list = field(default_factory=list)  # DescribeSpotPriceHistory entries
    egress_price_list: list = field(default_factory=list)  # AWSDataTransfer PriceList items
    instance_types_asked: list | None = None  # what was asked for; None = not recorded
    notes: list = field(default_factory=list)  # what the download could not get, as warnings

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Recorded:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --- the network part --------------------------------------------------------------------------


def pricing_client():
    import boto3
    from botocore.config import Config

    return boto3.client("pricing", region_name=PRICING_API_REGION,
                        config=Config(retries={"mode": "standard", "max_attempts": RETRIES}))


def ec2_client(region: str):
    import boto3
    from botocore.config import Config

    return boto3.client("ec2", region_name=region,
                        config=Config(retries={"mode": "standard", "max_attempts": RETRIES}))


def term_filters(terms: dict[str, str]) -> list[dict]:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def _error_code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _fetch_error(exc: Exception, what: str) -> PriceFetchError:
    """One line for a botocore failure, naming what was being asked."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return PriceFetchError(
            "aws: no credentials found by the default chain (AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials, SSO, instance role)")
    if isinstance(exc, (EndpointConnectionError, ConnectionError, ReadTimeoutError)):
        return PriceFetchError(f"aws: cannot reach the {what} endpoint ({exc})")
    if isinstance(exc, NoRegionError):
        return PriceFetchError("aws: no region configured")
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return PriceFetchError(f"aws: {what} failed: {_error_code(exc)}: {message}".rstrip(": "))
    return PriceFetchError(f"aws: {what} failed: {type(exc).__name__}: {exc}")


def paginate(client, operation: str, kwargs: dict, result_key: str, *,
             sleep: Callable[[float], None] = default_sleep,
             retries: int = RETRIES) -> Iterator:
    """Every item of every page of `operation`, through botocore's paginator.

    A throttled page is retried with exponential back-off, resuming at the token of the page
    that failed (botocore's own retries cover the live client; this also covers a stubbed one
    and throttling that outlasts botocore's attempts)."""
    from botocore.exceptions import ClientError

    token, attempt = None, 0
    while True:
        config = {"StartingToken": token} if token else {}
        pages = client.get_paginator(operation).paginate(**kwargs, PaginationConfig=config)
        try:
            for page in pages:
                attempt = 0
                token = page.get("NextToken")
                yield from page.get(result_key) or []
            return
        except ClientError as exc:
            if _error_code(exc) not in THROTTLE_CODES or attempt >= retries:
                raise
            sleep(backoff_s(attempt))
            attempt += 1


def _jsonable(entry: dict) -> dict:
    return {k: (iso(v) if isinstance(v, datetime) else v) for k, v in entry.items()}


def download(region: str, instance_types: Iterable[str], *, pricing=None, ec2=None,
             sleep: Callable[[float], None] = default_sleep, on_progress: Progress | None = None,
             now: datetime | None = None) -> Recorded:
    """Ask the APIs about `instance_types` in `region`; raise `PriceFetchError` on failure.

    Prices are required; specs, spot prices and egress are best effort: a denied or failed
    call there becomes a note (a warning) and `normalise` falls back (snapshot specs, no spot,
    the embedded egress tiers)."""
    from botocore.exceptions import BotoCoreError, ClientError

    now = now or utc_now()
    types = list(dict.fromkeys(instance_types))
    rec = Recorded(region=region, fetched_at=iso(now), instance_types_asked=types)
    say = on_progress or (lambda _msg: None)
    try:
        pricing = pricing or pricing_client()
        ec2 = ec2 or ec2_client(region)
    except BotoCoreError as exc:
        raise _fetch_error(exc, "client setup") from None

    for i, itype in enumerate(types, 1):
        say(f"aws {region}: prices of {itype} ({i}/{len(types)})")
        filters = term_filters({"regionCode": region, "instanceType": itype, **EC2_TERMS})
        try:
            rec.price_list.extend(paginate(
                pricing, "get_products",
                {"ServiceCode": EC2_SERVICE, "Filters": filters, "FormatVersion": "aws_v1"},
                "PriceList", sleep=sleep))
        except (BotoCoreError, ClientError) as exc:
            raise _fetch_error(exc, "Price List API (GetProducts)") from None

    say(f"aws {region}: instance specs")
    try:
        for start in range(0, len(types), 100):
            chunk = types[start:start + 100]
            rec.instance_types.extend(_jsonable(x) for x in paginate(
                ec2, "describe_instance_types",
                {"Filters": [{"Name": "instance-type", "Values": chunk}]},
                "InstanceTypes", sleep=sleep))
    except (BotoCoreError, ClientError) as exc:
        _best_effort(exc, rec, "DescribeInstanceTypes", "specs from the snapshot")

    say(f"aws {region}: spot prices")
    try:
        rec.spot_price_history.extend(_jsonable(x) for x in paginate(
            ec2, "describe_spot_price_history",
            {"InstanceTypes": types, "ProductDescriptions": SPOT_PRODUCTS, "StartTime": now},
            "SpotPriceHistory", sleep=sleep))
    except (BotoCoreError, ClientError) as exc:
        _best_effort(exc, rec, "DescribeSpotPriceHistory", "no spot prices")

    say(f"aws {region}: egress")
    try:
        rec.egress_price_list.extend(paginate(
            pricing, "get_products",
            {"ServiceCode": EGRESS_SERVICE, "FormatVersion": "aws_v1",
             "Filters": term_filters({"fromRegionCode": region, "transferType": "AWS Outbound",
                                      "toLocation": "External"})},
            "PriceList", sleep=sleep))
    except (BotoCoreError, ClientError) as exc:
        _best_effort(exc, rec, "AWSDataTransfer prices", "the embedded egress tiers")
    return rec


def _best_effort(exc: Exception, rec: Recorded, what: str, instead: str) -> None:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        raise _fetch_error(exc, what) from None
    rec.notes.append(f"aws {rec.region}: {_fetch_error(exc, what)} -> {instead}")


def fetch_offers(region: str, *, instance_types: Iterable[str] | None = None,
                 on_progress: Progress | None = None, pricing=None, ec2=None,
                 sleep: Callable[[float], None] = default_sleep,
                 now: datetime | None = None) -> FetchResult:
    """Current prices of `instance_types` (default: the types the snapshot knows) in `region`."""
    types = list(instance_types) if instance_types else snapshot_instance_types(PROVIDER)
    rec = download(region, types, pricing=pricing, ec2=ec2, sleep=sleep,
                   on_progress=on_progress, now=now)
    offers, warnings = normalise(rec, fallback_specs=snapshot_specs(PROVIDER))
    if offers.empty:
        raise PriceFetchError(f"aws {region}: the Price List API returned no usable prices for "
                              f"{summarise(types)}")
    tiers = egress_tiers(rec.egress_price_list)
    if tiers is None and not any("AWSDataTransfer" in n for n in rec.notes):
        warnings.append(f"aws {region}: no egress tiers in the price list; the embedded "
                        f"ones apply")
    return FetchResult(provider=PROVIDER, region=region, offers=offers,
                       fetched_at=rec.fetched_at, source=SOURCE, warnings=warnings,
                       egress_tiers=tiers)


# --- the pure part: raw responses -> OfferTable rows ------------------------------------------


class _Malformed(ValueError):
    pass


@dataclass
class ProductPrices:
    instance_type: str
    sku: str
    hourly: float
    reserved_1y: float
    reserved_3y: float
    attributes: dict


def _usd(dimension: dict) -> float:
    try:
        price = float(dimension["pricePerUnit"]["USD"])
    except (KeyError, TypeError, ValueError):
        raise _Malformed("a price dimension has no USD price") from None
    if not math.isfinite(price) or price < 0:
        raise _Malformed(f"bad USD price {dimension['pricePerUnit']['USD']!r}")
    return price


def _hourly(term: dict) -> float | None:
    """The term's hourly rate (the 'Hrs' dimension), None when it has none."""
    dims = term.get("priceDimensions")
    if not isinstance(dims, dict):
        raise _Malformed("a term without priceDimensions")
    hourly = [_usd(d) for d in dims.values() if isinstance(d, dict) and d.get("unit") == "Hrs"]
    return hourly[0] if hourly else None


def _reserved(terms: dict, years: int) -> float:
    lengths = {f"{years}yr", f"{years} yr", f"{years}Yr"}
    for term in terms.values():
        attrs = term.get("termAttributes") or {}
        if (attrs.get("LeaseContractLength") in lengths
                and attrs.get("OfferingClass") == "standard"
                and attrs.get("PurchaseOption") == "No Upfront"):
            price = _hourly(term)
            if price:
                return price
    return float("nan")


def parse_price_item(item) -> ProductPrices:
    """One AmazonEC2 PriceList item (a JSON string, or its decoded dict) -> its prices."""
    try:
        data = json.loads(item) if isinstance(item, (str, bytes)) else item
    except json.JSONDecodeError as exc:
        raise _Malformed(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise _Malformed("not a JSON object")
    product = data.get("product") or {}
    attrs = product.get("attributes") or {}
    itype = attrs.get("instanceType")
    if not itype:
        raise _Malformed("no product.attributes.instanceType")
    terms = data.get("terms") or {}
    on_demand = terms.get("OnDemand") or {}
    hourly = [h for h in (_hourly(t) for t in on_demand.values()) if h is not None]
    if not hourly or not hourly[0] > 0:
        raise _Malformed(f"{itype}: no positive on-demand hourly USD price")
    reserved = terms.get("Reserved") or {}
    return ProductPrices(instance_type=itype, sku=str(product.get("sku", "")), hourly=hourly[0],
                         reserved_1y=_reserved(reserved, 1), reserved_3y=_reserved(reserved, 3),
                         attributes=attrs)


def parse_price_list(items: Iterable, region: str) -> tuple[dict[str, ProductPrices], list[str]]:
    """Prices per instance type; malformed items are skipped with a warning."""
    found: dict[str, list[ProductPrices]] = {}
    warnings: list[str] = []
    for n, item in enumerate(items, 1):
        try:
            prices = parse_price_item(item)
        except _Malformed as exc:
            warnings.append(f"aws {region}: skipped malformed price list item #{n}: {exc}")
            continue
        item_region = prices.attributes.get("regionCode")
        if item_region not in (None, region):
            warnings.append(f"aws {region}: skipped price list item #{n} for region "
                            f"{item_region}")
            continue
        found.setdefault(prices.instance_type, []).append(prices)
    out = {}
    for itype, candidates in found.items():
        plain = [p for p in candidates if p.attributes.get("operation", "RunInstances")
                 == "RunInstances"] or candidates
        if len({p.sku for p in plain}) > 1:
            warnings.append(f"aws {region}: {len(plain)} products match {itype}; using sku "
                            f"{plain[0].sku}")
        out[itype] = plain[0]
    return out, warnings


def specs_from_instance_type(info: dict) -> dict:
    """`DescribeInstanceTypes` entry -> the specs `hardware_for` and the OfferTable use."""
    archs = (info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
    specs = {
        ot.VCPUS: int(info["VCpuInfo"]["DefaultVCpus"]),
        ot.MEMORY_GIB: round(float(info["MemoryInfo"]["SizeInMiB"]) / 1024, 3),
        ot.ARCH: "aarch64" if "arm64" in archs else "x86_64",
        ot.ACCELERATOR_COUNT: 0,
    }
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    neuron = ((info.get("NeuronInfo") or {}).get("NeuronDevices")
              or (info.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or [])
    devices = gpus or neuron
    if devices:
        specs[ot.ACCELERATOR_COUNT] = sum(int(d.get("Count", 0)) for d in devices)
        specs[ACCELERATOR_NAME] = str(devices[0].get("Name", ""))
        mib = (devices[0].get("MemoryInfo") or {}).get("SizeInMiB")
        if mib:
            specs["accelerator_memory_gib"] = round(float(mib) / 1024, 3)
    return specs


def parse_instance_types(infos: Iterable[dict], region: str) -> tuple[dict[str, dict], list[str]]:
    specs, warnings = {}, []
    for info in infos:
        try:
            specs[info["InstanceType"]] = specs_from_instance_type(info)
        except (KeyError, TypeError, ValueError) as exc:
            name = info.get("InstanceType", "?") if isinstance(info, dict) else "?"
            warnings.append(f"aws {region}: skipped malformed instance type entry {name} "
                            f"({type(exc).__name__}: {exc})")
    return specs, warnings


def _regular_zone(zone: str, region: str) -> bool:
    """us-east-1a is a regular zone; us-east-1-atl-1a (a Local Zone) is not."""
    return len(zone) == len(region) + 1 and zone.startswith(region) and zone[-1].isalpha()


def spot_medians(history: Iterable[dict], region: str) -> dict[str, tuple[float, int]]:
    """Per instance type: (median over regular zones of each zone's latest price, zones)."""
    latest: dict[tuple[str, str], tuple[str, float]] = {}
    for entry in history:
        try:
            zone, itype = entry["AvailabilityZone"], entry["InstanceType"]
            price = float(entry["SpotPrice"])
        except (KeyError, TypeError, ValueError):
            continue
        if not entry.get("ProductDescription", "Linux/UNIX").startswith("Linux/UNIX"):
            continue
        if not _regular_zone(zone, region) or not price > 0:
            continue
        stamp = str(entry.get("Timestamp", ""))
        if (itype, zone) not in latest or stamp > latest[itype, zone][0]:
            latest[itype, zone] = (stamp, price)
    per_type: dict[str, list[float]] = {}
    for (itype, _zone), (_stamp, price) in latest.items():
        per_type.setdefault(itype, []).append(price)
    return {t: (float(statistics.median(p)), len(p)) for t, p in per_type.items()}


def normalise(rec: Recorded, *, price_date: str | None = None, source_prefix: str = "",
              fallback_specs: dict[str, dict] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Raw responses -> (`OfferTable` rows, warnings). Offers with no known hardware class,
    or no specs, are dropped with a warning naming them."""
    region = rec.region
    date = price_date or rec.fetched_at[:10]
    warnings = list(rec.notes)
    prices, w = parse_price_list(rec.price_list, region)
    warnings += w
    specs, w = parse_instance_types(rec.instance_types, region)
    warnings += w
    spot = spot_medians(rec.spot_price_history, region)
    fallback = fallback_specs or {}
    rows, unmapped, no_specs = [], [], []
    for itype, p in sorted(prices.items()):
        spec = specs.get(itype) or fallback.get(itype)
        if spec is None:
            no_specs.append(itype)
            continue
        hw = hardware_for(PROVIDER, itype, spec)
        if hw is None:
            unmapped.append(itype)
            continue
        median, zones = spot.get(itype, (float("nan"), 0))
        spot_price = median if median < p.hourly else float("nan")
        source = (f"{source_prefix}AWS Price List API, Linux shared tenancy on-demand"
                  f"{'; reserved: standard no-upfront' if not math.isnan(p.reserved_1y) else ''}"
                  f" (fetched {rec.fetched_at})")
        if not math.isnan(spot_price):
            source += f"; spot: median of {zones} zones' current price (DescribeSpotPriceHistory)"
        if itype not in specs:
            source += "; specs from the embedded snapshot"
        rows.append(offer_row(PROVIDER, region, itype, hw, hardware_kind(hw), spec,
                              hourly=p.hourly, spot=spot_price, reserved_1y=p.reserved_1y,
                              reserved_3y=p.reserved_3y, source=source, price_date=date))
    if rec.instance_types_asked:
        missing = set(rec.instance_types_asked) - set(prices)
        if missing:
            warnings.append(f"aws {region}: no Linux on-demand price listed for "
                            f"{summarise(missing)}")
    if no_specs:
        warnings.append(f"aws {region}: dropped {len(no_specs)} type(s) with no specs: "
                        f"{summarise(no_specs)}")
    if unmapped:
        warnings.append(f"aws {region}: dropped {len(unmapped)} type(s) with no known hardware "
                        f"class: {summarise(unmapped)}")
    return offers_frame(rows, origin=f"aws {region} prices"), warnings


def egress_tiers(items: Iterable) -> tuple[tuple[float, float], ...] | None:
    """AWSDataTransfer 'AWS Outbound' items -> (width_gb, usd_per_gb) tiers as in
    `pricing.egress`: the account's free 100 GB first, then the listed paid tiers (a listed
    zero-priced first tier, the old 'first 1 GB', is folded into the free allowance)."""
    dims: set[tuple[float, float, float]] = set()
    for item in items:
        try:
            data = json.loads(item) if isinstance(item, (str, bytes)) else item
            for term in (data.get("terms", {}).get("OnDemand") or {}).values():
                for d in term["priceDimensions"].values():
                    if d.get("unit") != "GB":
                        continue
                    end = d.get("endRange", "Inf")
                    dims.add((float(d["beginRange"]),
                              math.inf if end in ("Inf", "", None) else float(end), _usd(d)))
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError,
                _Malformed):
            continue
    paid = sorted(d for d in dims if d[2] > 0)
    if not paid:
        return None
    tiers, start = [(FREE_EGRESS_GB, 0.0)], 0.0
    for begin, end, price in paid:
        if begin < start:
            continue  # overlapping duplicates from several items
        tiers.append((end - start, price))
        start = end
    if not math.isinf(tiers[-1][0]):
        return None  # an unbounded last tier is required
    return tuple(tiers)
