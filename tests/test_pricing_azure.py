"""Azure fetcher against recorded-shape HTTP answers replayed by `responses`: the public Retail
Prices API (plain requests) and the Resource SKUs endpoint through azure-mgmt-compute's own
pipeline with a fake `TokenCredential`. No network.

Pay-as-you-go and spot prices below are the snapshot's eastus values; the reservation prices
are made up for the test.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from responses import matchers

from pricing import azure
from pricing import table as ot
from pricing.fetch import PriceFetchError

REGION = "eastus"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUB = "00000000-1111-2222-3333-444444444444"
SKUS_URL = f"https://management.azure.com/subscriptions/{SUB}/providers/Microsoft.Compute/skus"


def item(arm, price, *, sku_name=None, product=None, price_type="Consumption", term=None,
         primary=True, region=REGION, **extra) -> dict:
    """One Retail Prices API item, with the fields the API returns."""
    size = arm.removeprefix("Standard_").replace("_", " ")
    row = {
        "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
        "armRegionName": region, "location": "US East", "effectiveStartDate": "2024-06-01T00:00:00Z",
        "meterId": f"meter-{arm}-{sku_name}", "meterName": sku_name or size,
        "productId": "DZH318Z0BQ4L", "skuId": "DZH318Z0BQ4L/00TG",
        "productName": product or "Virtual Machines Dsv5 Series", "skuName": sku_name or size,
        "serviceName": "Virtual Machines", "serviceId": "DZH313Z7MMC8", "serviceFamily": "Compute",
        "unitOfMeasure": "1 Hour", "type": price_type, "isPrimaryMeterRegion": primary,
        "armSkuName": arm,
    }
    if term:
        row["reservationTerm"] = term
    return row | extra


def page(items, next_link=None) -> dict:
    return {"BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
            "Items": items, "NextPageLink": next_link, "Count": len(items)}


NEXT_BASE = "https://prices.azure.com:443/api/retail/prices"  # NextPageLink spells the port


def link(price_type, skip) -> str:
    return (f"{NEXT_BASE}?$filter="
            f"{azure.retail_filter(REGION, price_type)}&$skip={skip}")


def filter_matcher(price_type, skip=None):
    params = {"$filter": azure.retail_filter(REGION, price_type)}
    if skip is not None:
        params["$skip"] = str(skip)
    return [matchers.query_param_matcher(params)]


def sku(name, vcpus, memory_gb, gpus=None, arch="x64") -> dict:
    caps = [{"name": "MaxResourceVolumeMB", "value": "0"}, {"name": "vCPUs", "value": str(vcpus)},
            {"name": "MemoryGB", "value": str(memory_gb)}, {"name": "CpuArchitectureType", "value": arch},
            {"name": "LowPriorityCapable", "value": "True"}]
    if gpus is not None:
        caps.append({"name": "GPUs", "value": str(gpus)})
    return {"resourceType": "virtualMachines", "name": name, "tier": "Standard",
            "size": name.removeprefix("Standard_"), "family": "standardDSv5Family",
            "locations": [REGION], "locationInfo": [{"location": REGION, "zones": ["1", "2", "3"]}],
            "capabilities": caps, "restrictions": []}


class FakeCredential:
    """A `TokenCredential`: what DefaultAzureCredential gives the SDK, minus the login."""

    def __init__(self, fail=False):
        self.fail = fail
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        if self.fail:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")
        self.scopes.append(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)


@pytest.fixture(autouse=True)
def _no_subscription(monkeypatch):
    monkeypatch.delenv(azure.SUBSCRIPTION_ENV, raising=False)


def _add_retail_pages(rsps):
    consumption = [
        item("Standard_D2s_v5", 0.096),
        item("Standard_D2s_v5", 0.01056, sku_name="D2s v5 Spot"),
        item("Standard_D2s_v5", 0.0192, sku_name="D2s v5 Low Priority"),
        item("Standard_D2s_v5", 0.188, product="Virtual Machines Dsv5 Series Windows"),
        item("Standard_D2s_v5", 0.5, product="Cloud Services Dsv5 Series"),
        item("Standard_NC4as_T4_v3", 0.526, product="Virtual Machines NCasT4_v3 Series"),
        item("Standard_NC4as_T4_v3", 0.062699, sku_name="NC4as T4 v3 Spot",
             product="Virtual Machines NCasT4_v3 Series"),
    ]
    rsps.add(responses.GET, azure.RETAIL_URL, json=page(consumption, link("Consumption", 1000)),
             match=filter_matcher("Consumption"))
    # The second page is rate limited once, then answers.
    rsps.add(responses.GET, NEXT_BASE, status=429, headers={"Retry-After": "2"},
             json={"Error": "Too many requests"}, match=filter_matcher("Consumption", 1000))
    rsps.add(responses.GET, NEXT_BASE, match=filter_matcher("Consumption", 1000), json=page([
        item("Standard_D2s_v5", "abc"),  # malformed: the price is not a number
        {"currencyCode": "USD", "unitPrice": 0.1, "type": "Consumption"},  # malformed: no size
        item("Standard_D2s_v5", 0.2, primary=False),  # a non-primary meter: not chosen
        item("Standard_D2ps_v5", 0.077, product="Virtual Machines Dpsv5 Series"),
        item("Standard_D2ps_v5", 0.00847, sku_name="D2ps v5 Spot", product="Virtual Machines Dpsv5 Series"),
        item("Standard_D2ps_v5", 0.09, product="Virtual Machines Dpsv5 Series", price_type="DevTestConsumption"),
    ], link("Consumption", 2000)))
    rsps.add(responses.GET, NEXT_BASE, json=page([]),  # an empty last page
             match=filter_matcher("Consumption", 2000))
    reservations = [
        item("Standard_D2s_v5", 499.32, price_type="Reservation", term="1 Year", sku_name="D2s v5"),
        item("Standard_D2s_v5", 963.6, price_type="Reservation", term="3 Years", sku_name="D2s v5"),
        item("Standard_NC4as_T4_v3", 2847.0, price_type="Reservation", term="1 Year",
             product="Virtual Machines NCasT4_v3 Series"),
    ]
    rsps.add(responses.GET, azure.RETAIL_URL, json=page(reservations),
             match=filter_matcher("Reservation"))


@responses.activate
def test_retail_prices_with_resource_sku_specs():
    _add_retail_pages(responses)
    responses.add(responses.GET, SKUS_URL, match=[matchers.query_param_matcher(
        {"$filter": f"location eq '{REGION}'"}, strict_match=False)], json={"value": [
            sku("Standard_D2s_v5", 2, 8), sku("Standard_D2ps_v5", 2, 8, arch="Arm64"),
            sku("Standard_NC4as_T4_v3", 4, 28, gpus=1),
            {"resourceType": "disks", "name": "Premium_LRS", "locations": [REGION]},
        ]})
    credential, sleeps = FakeCredential(), []

    result = azure.fetch_offers(REGION, instance_types=[
        "Standard_D2s_v5", "Standard_D2ps_v5", "Standard_NC4as_T4_v3"], credential=credential,
        subscription_id=SUB, sleep=sleeps.append, now=NOW)

    assert sleeps == [2.0]  # Retry-After honoured once
    offers = result.offers.set_index(ot.INSTANCE_TYPE)
    d2s = offers.loc["Standard_D2s_v5"]
    assert d2s[ot.OFFER] == "azure:eastus:Standard_D2s_v5" and d2s[ot.HARDWARE] == "x86-icx-2c"
    assert d2s[ot.HOURLY_USD] == pytest.approx(0.096)  # Windows, Cloud Services, non-primary: dropped
    assert d2s[ot.SPOT_HOURLY_USD] == pytest.approx(0.01056)
    assert d2s[ot.RESERVED_1Y_HOURLY_USD] == pytest.approx(499.32 / 8760)
    assert d2s[ot.RESERVED_3Y_HOURLY_USD] == pytest.approx(963.6 / 26280)
    d2ps = offers.loc["Standard_D2ps_v5"]
    assert (d2ps[ot.HARDWARE], d2ps[ot.ARCH], d2ps[ot.HOURLY_USD]) == (
        "arm-neoverse-n1-2c", "aarch64", 0.077)
    t4 = offers.loc["Standard_NC4as_T4_v3"]
    assert (t4[ot.HARDWARE], t4[ot.ACCELERATOR], t4[ot.ACCELERATOR_COUNT], t4[ot.MEMORY_GIB]) == (
        "nvidia-t4", "nvidia-t4", 1, 28.0)
    assert t4[ot.RESERVED_1Y_HOURLY_USD] == pytest.approx(2847.0 / 8760)
    assert math.isnan(t4[ot.RESERVED_3Y_HOURLY_USD])
    assert set(result.offers[ot.PRICE_DATE]) == {"2026-12-01"}
    assert not any("specs from the embedded snapshot" in s for s in result.offers[ot.PRICE_SOURCE])
    assert len([w for w in result.warnings if "malformed" in w]) == 2
    # The SKU list went through azure-mgmt-compute's pipeline with the credential's token.
    sku_calls = [c for c in responses.calls if c.request.url.startswith(SKUS_URL)]
    assert len(sku_calls) == 1
    assert sku_calls[0].request.headers["Authorization"] == "Bearer fake-token"
    assert "api-version" in parse_qs(urlparse(sku_calls[0].request.url).query)
    assert credential.scopes == [("https://management.azure.com/.default",)]


@responses.activate
def test_without_a_subscription_prices_are_public_and_specs_come_from_the_snapshot():
    _add_retail_pages(responses)
    result = azure.fetch_offers(REGION, instance_types=["Standard_D2s_v5", "Standard_NC4as_T4_v3"],
                                sleep=lambda s: None, now=NOW)
    offers = result.offers.set_index(ot.INSTANCE_TYPE)
    assert list(offers.index) == ["Standard_D2s_v5", "Standard_NC4as_T4_v3"]
    assert offers.loc["Standard_NC4as_T4_v3", ot.MEMORY_GIB] == 28  # the snapshot's spec
    assert all("specs from the embedded snapshot" in s for s in offers[ot.PRICE_SOURCE])
    assert any("AZURE_SUBSCRIPTION_ID not set" in w for w in result.warnings)
    assert not any(c.request.url.startswith("https://management.azure.com") for c in responses.calls)


@responses.activate
def test_a_failing_credential_falls_back_to_snapshot_specs():
    _add_retail_pages(responses)
    result = azure.fetch_offers(REGION, instance_types=["Standard_D2s_v5"],
                                credential=FakeCredential(fail=True), subscription_id=SUB,
                                sleep=lambda s: None, now=NOW)
    assert list(result.offers[ot.INSTANCE_TYPE]) == ["Standard_D2s_v5"]
    assert any("ClientAuthenticationError" in w for w in result.warnings)


@responses.activate
def test_sizes_without_specs_or_class_are_dropped_with_a_warning():
    responses.add(responses.GET, azure.RETAIL_URL, match=filter_matcher("Consumption"), json=page([
        item("Standard_D2s_v5", 0.096),
        item("Standard_D16s_v5", 0.768),  # Ice Lake, but no 16-vCPU class in the catalog
        item("Standard_M416ms_v2", 80.0, product="Virtual Machines MSv2 Series"),
    ]))
    responses.add(responses.GET, azure.RETAIL_URL, match=filter_matcher("Reservation"), json=page([]))
    responses.add(responses.GET, SKUS_URL, json={"value": [
        sku("Standard_D2s_v5", 2, 8), sku("Standard_D16s_v5", 16, 64)]})
    result = azure.fetch_offers(REGION, instance_types=[
        "Standard_D2s_v5", "Standard_D16s_v5", "Standard_M416ms_v2"],
        credential=FakeCredential(), subscription_id=SUB, sleep=lambda s: None, now=NOW)
    assert list(result.offers[ot.INSTANCE_TYPE]) == ["Standard_D2s_v5"]
    assert any("no known hardware class" in w and "Standard_D16s_v5" in w for w in result.warnings)
    assert any("no specs" in w and "Standard_M416ms_v2" in w for w in result.warnings)


@responses.activate
def test_persistent_server_errors_and_no_network_are_one_line_errors():
    for _ in range(azure.RETRIES + 1):
        responses.add(responses.GET, azure.RETAIL_URL, status=503, body="busy")
    sleeps = []
    with pytest.raises(PriceFetchError) as exc:
        azure.fetch_offers(REGION, instance_types=["Standard_D2s_v5"], sleep=sleeps.append, now=NOW)
    assert "HTTP 503" in str(exc.value) and len(sleeps) == azure.RETRIES
    responses.reset()  # nothing registered: `responses` refuses the connection
    with pytest.raises(PriceFetchError, match="^azure: cannot reach the Retail Prices API"):
        azure.fetch_offers(REGION, instance_types=["Standard_D2s_v5"], sleep=lambda s: None, now=NOW)


@responses.activate
def test_a_bad_request_is_not_retried():
    responses.add(responses.GET, azure.RETAIL_URL, status=400,
                  json={"Error": {"Code": "BadRequest", "Message": "Invalid OData filter"}})
    with pytest.raises(PriceFetchError, match="HTTP 400"):
        azure.fetch_offers(REGION, instance_types=["Standard_D2s_v5"], sleep=lambda s: 1 / 0)


def test_region_with_no_linux_price_is_a_fetch_error():
    with responses.RequestsMock() as rsps:
        for price_type in azure.PRICE_TYPES:
            rsps.add(responses.GET, azure.RETAIL_URL, json=page([]), match=filter_matcher(price_type))
        with pytest.raises(PriceFetchError, match="no usable Linux prices"):
            azure.fetch_offers(REGION, instance_types=["Standard_D2s_v5"], now=NOW)


def test_classify_rules():
    assert azure.classify(item("Standard_D2s_v5", 0.1)) == ("Standard_D2s_v5", "hourly")
    assert azure.classify(item("Standard_D2s_v5", 0.1, sku_name="D2s v5 Spot")) == (
        "Standard_D2s_v5", "spot")
    assert azure.classify(item("Standard_D2s_v5", 0.1, sku_name="D2s v5 Low Priority")) is None
    assert azure.classify(item("Standard_D2s_v5", 0.1, product="Virtual Machines Dsv5 Series Windows")) is None
    assert azure.classify(item("Standard_D2s_v5", 9.0, price_type="Reservation", term="3 Years")) == (
        "Standard_D2s_v5", "reserved_3y")
    with pytest.raises(ValueError):
        azure.classify(item("Standard_D2s_v5", 9.0, price_type="Reservation", term="5 Years"))
    with pytest.raises(ValueError):
        azure.classify(item("Standard_D2s_v5", 0.1, unitOfMeasure="1 Month"))


@responses.activate
def test_recording_round_trips_through_json():
    _add_retail_pages(responses)
    rec = azure.download(REGION, ["Standard_D2s_v5"], sleep=lambda s: None, now=NOW)
    again = azure.Recorded.from_json(json.loads(json.dumps(rec.to_json())))
    a, _ = azure.normalise(rec)
    b, _ = azure.normalise(again)
    assert a.equals(b) and len(a) == 0  # no fallback specs passed: nothing to price it with
    a, _ = azure.normalise(rec, fallback_specs={"Standard_D2s_v5": {
        ot.VCPUS: 2, ot.MEMORY_GIB: 8.0, ot.ARCH: "x86_64", ot.ACCELERATOR_COUNT: 0}})
    assert list(a[ot.INSTANCE_TYPE]) == ["Standard_D2s_v5"]
