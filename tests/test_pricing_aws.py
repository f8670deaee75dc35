"""AWS fetcher against botocore's Stubber on real clients: no network, real request/response
shapes (the Stubber validates both against the service models).

On-demand prices in the items below are the snapshot's us-east-1 list prices; the reserved
and spot figures are made up for the test (they only need to be plausible and distinct).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from pricing import aws, egress
from pricing import table as ot
from pricing.fetch import PriceFetchError

REGION = "us-east-1"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# --- real-shaped responses --------------------------------------------------------------------


def _sku(*parts) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:16].upper()


def _dimension(sku, term, usd, unit="Hrs", description="", begin="0", end="Inf"):
    rate = f"{sku}.{term}.6YS6EN2CT7"
    return rate, {"unit": unit, "endRange": end, "description": description, "appliesTo": [],
                  "rateCode": rate, "beginRange": begin, "pricePerUnit": {"USD": f"{usd:.10f}"}}


def _term(sku, code, dimensions, attrs=None):
    return {f"{sku}.{code}": {
        "priceDimensions": dict(dimensions), "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
        "offerTermCode": code, "termAttributes": attrs or {}}}


def price_item(itype, hourly, *, region=REGION, r1=None, r3=None, vcpu="2", memory="4 GiB",
               operation="RunInstances") -> str:
    """An AmazonEC2 PriceList item exactly as GetProducts returns it: a JSON string."""
    sku = _sku(itype, region, operation)
    attributes = {
        "instanceType": itype, "regionCode": region, "location": "US East (N. Virginia)",
        "locationType": "AWS Region", "operatingSystem": "Linux", "tenancy": "Shared",
        "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
        "operation": operation, "usagetype": f"BoxUsage:{itype}", "vcpu": vcpu, "memory": memory,
        "servicecode": "AmazonEC2", "marketoption": "OnDemand", "currentGeneration": "Yes",
    }
    terms = {"OnDemand": _term(sku, "JRTCKXETXF", [_dimension(
        sku, "JRTCKXETXF", hourly, description=f"${hourly} per On Demand Linux {itype} Instance Hour")])}
    reserved = {}
    if r1 is not None:
        reserved |= _term(sku, "4NA7Y494T4", [_dimension(sku, "4NA7Y494T4", r1)], {
            "LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "No Upfront"})
        # All upfront and convertible terms are in the same list and must be ignored.
        reserved |= _term(sku, "6QCMYABX3D", [
            _dimension(sku, "6QCMYABX3D", 0.0),
            (f"{sku}.6QCMYABX3D.2TG2D8R56U", {"unit": "Quantity", "description": "Upfront Fee",
                                               "appliesTo": [], "rateCode": "x", "pricePerUnit": {"USD": "500"}}),
        ], {"LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "All Upfront"})
        reserved |= _term(sku, "7NE97W5U4E", [_dimension(sku, "7NE97W5U4E", r1 * 1.3)], {
            "LeaseContractLength": "1yr", "OfferingClass": "convertible", "PurchaseOption": "No Upfront"})
    if r3 is not None:
        reserved |= _term(sku, "BPH4J8HBKS", [_dimension(sku, "BPH4J8HBKS", r3)], {
            "LeaseContractLength": "3yr", "OfferingClass": "standard", "PurchaseOption": "No Upfront"})
    if reserved:
        terms["Reserved"] = reserved
    return json.dumps({"product": {"productFamily": "Compute Instance", "attributes": attributes,
                                   "sku": sku},
                       "serviceCode": "AmazonEC2", "terms": terms, "version": "20261101000000",
                       "publicationDate": "2026-11-01T00:00:00Z"})


def egress_item(region=REGION) -> str:
    sku = _sku("egress", region)
    dims = [_dimension(sku, "JRTCKXETXF", usd, unit="GB", begin=str(b), end=e)
            for b, e, usd in ((0, "10240", 0.09), (10240, "51200", 0.085),
                              (51200, "153600", 0.07), (153600, "Inf", 0.05))]
    dims = [(f"{rate}{i}", d) for i, (rate, d) in enumerate(dims)]
    return json.dumps({"product": {"productFamily": "Data Transfer", "sku": sku, "attributes": {
        "transferType": "AWS Outbound", "fromRegionCode": region, "toLocation": "External",
        "usagetype": "DataTransfer-Out-Bytes", "servicecode": "AWSDataTransfer"}},
        "serviceCode": "AWSDataTransfer", "terms": {"OnDemand": _term(sku, "JRTCKXETXF", dims)},
        "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"})


def instance_info(itype, vcpus, mib, arch="x86_64", gpus=None, neuron=None) -> dict:
    info = {"InstanceType": itype, "CurrentGeneration": True,
            "ProcessorInfo": {"SupportedArchitectures": [arch]},
            "VCpuInfo": {"DefaultVCpus": vcpus}, "MemoryInfo": {"SizeInMiB": mib}}
    if gpus:
        name, count, gpu_mib = gpus
        info["GpuInfo"] = {"Gpus": [{"Name": name, "Manufacturer": "NVIDIA", "Count": count,
                                     "MemoryInfo": {"SizeInMiB": gpu_mib}}],
                           "TotalGpuMemoryInMiB": count * gpu_mib}
    if neuron:
        name, count = neuron
        info["NeuronInfo"] = {"NeuronDevices": [{"Count": count, "Name": name,
                                                 "CoreInfo": {"Count": 2, "Version": 2},
                                                 "MemoryInfo": {"SizeInMiB": 32768}}],
                              "TotalNeuronDeviceMemoryInMiB": count * 32768}
    return info


def spot(itype, zone, price, hour=11):
    return {"AvailabilityZone": zone, "InstanceType": itype, "ProductDescription": "Linux/UNIX",
            "SpotPrice": f"{price:.6f}", "Timestamp": datetime(2026, 12, 1, hour, tzinfo=UTC)}


def ec2_filters(itype):
    return aws.term_filters({"regionCode": REGION, "instanceType": itype, **aws.EC2_TERMS})


def products_params(itype, token=None):
    params = {"ServiceCode": "AmazonEC2", "Filters": ec2_filters(itype), "FormatVersion": "aws_v1"}
    return params | ({"NextToken": token} if token else {})


EGRESS_PARAMS = {"ServiceCode": "AWSDataTransfer", "FormatVersion": "aws_v1", "Filters": aws.term_filters(
    {"fromRegionCode": REGION, "transferType": "AWS Outbound", "toLocation": "External"})}


@pytest.fixture
def clients():
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(pricing) as ps, Stubber(ec2) as es:
        yield pricing, ps, ec2, es
        ps.assert_no_pending_responses()
        es.assert_no_pending_responses()


def _stub_specs_spot_egress(ps, es, types, infos, history):
    es.add_response("describe_instance_types", {"InstanceTypes": infos},
                    {"Filters": [{"Name": "instance-type", "Values": types}]})
    es.add_response("describe_spot_price_history", {"SpotPriceHistory": history},
                    {"InstanceTypes": types, "ProductDescriptions": ["Linux/UNIX"], "StartTime": NOW})
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [egress_item()]},
                    EGRESS_PARAMS)


# --- the whole fetch ---------------------------------------------------------------------------


def test_fetch_pages_throttling_reserved_spot_specs_and_egress(clients):
    pricing, ps, ec2, es = clients
    types = ["c7a.large", "g5.xlarge", "inf2.xlarge"]
    # c7a.large: an empty first page that still carries a NextToken, then the item.
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [], "NextToken": "t1"},
                    products_params("c7a.large"))
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("c7a.large", 0.10264, r1=0.0647, r3=0.0445)]}, products_params("c7a.large", "t1"))
    # g5.xlarge: throttled, retried, then two pages.
    ps.add_client_error("get_products", service_error_code="ThrottlingException",
                        service_message="Rate exceeded", http_status_code=400,
                        expected_params=products_params("g5.xlarge"))
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("g5.xlarge", 1.006, r1=0.634, vcpu="4", memory="16 GiB")], "NextToken": "t2"},
        products_params("g5.xlarge"))
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []},
                    products_params("g5.xlarge", "t2"))
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("inf2.xlarge", 0.7582, vcpu="4", memory="16 GiB")]}, products_params("inf2.xlarge"))
    infos = [instance_info("c7a.large", 2, 4096),
             instance_info("g5.xlarge", 4, 16384, gpus=("A10G", 1, 22888)),
             instance_info("inf2.xlarge", 4, 16384, neuron=("Inferentia2", 1))]
    history = [
        spot("c7a.large", "us-east-1a", 0.0419), spot("c7a.large", "us-east-1b", 0.0498),
        spot("c7a.large", "us-east-1c", 0.0566), spot("c7a.large", "us-east-1d", 0.0374),
        spot("c7a.large", "us-east-1c", 0.0900, hour=9),  # older price of the same zone
        spot("c7a.large", "us-east-1-atl-2a", 0.0100),  # a Local Zone: not counted
        spot("g5.xlarge", "us-east-1a", 0.40), spot("g5.xlarge", "us-east-1b", 0.46),
        spot("inf2.xlarge", "us-east-1a", 0.80),  # above on-demand: no spot price
    ]
    _stub_specs_spot_egress(ps, es, types, infos, history)
    sleeps = []

    result = aws.fetch_offers(REGION, instance_types=types, pricing=pricing, ec2=ec2,
                              sleep=sleeps.append, now=NOW)

    assert len(sleeps) == 1 and 0 < sleeps[0] <= 30  # one back-off for the throttled page
    offers = result.offers.set_index(ot.INSTANCE_TYPE)
    assert list(offers.index) == types
    c7a = offers.loc["c7a.large"]
    assert c7a[ot.OFFER] == "aws:us-east-1:c7a.large" and c7a[ot.HARDWARE] == "x86-zen4-2c"
    assert c7a[ot.HOURLY_USD] == pytest.approx(0.10264)
    assert c7a[ot.RESERVED_1Y_HOURLY_USD] == pytest.approx(0.0647)
    assert c7a[ot.RESERVED_3Y_HOURLY_USD] == pytest.approx(0.0445)
    assert c7a[ot.SPOT_HOURLY_USD] == pytest.approx((0.0419 + 0.0498) / 2)  # median of 4 zones
    assert (c7a[ot.VCPUS], c7a[ot.MEMORY_GIB], c7a[ot.ARCH]) == (2, 4.0, "x86_64")
    assert not isinstance(c7a[ot.ACCELERATOR], str) and c7a[ot.ACCELERATOR_COUNT] == 0
    g5 = offers.loc["g5.xlarge"]
    assert (g5[ot.HARDWARE], g5[ot.ACCELERATOR], g5[ot.ACCELERATOR_COUNT]) == (
        "nvidia-a10g", "nvidia-a10g", 1)
    assert g5[ot.SPOT_HOURLY_USD] == pytest.approx(0.43)
    assert math.isnan(g5[ot.RESERVED_3Y_HOURLY_USD])
    inf2 = offers.loc["inf2.xlarge"]
    assert (inf2[ot.HARDWARE], inf2[ot.ACCELERATOR_COUNT]) == ("aws-inferentia2", 1)
    assert math.isnan(inf2[ot.SPOT_HOURLY_USD]) and math.isnan(inf2[ot.RESERVED_1Y_HOURLY_USD])
    assert set(result.offers[ot.PRICE_DATE]) == {"2026-12-01"}
    assert result.fetched_at.startswith("2026-12-01T12:00")
    assert "AWS Price List API" in c7a[ot.PRICE_SOURCE] and "median of 4 zones" in c7a[ot.PRICE_SOURCE]
    assert result.egress_tiers == egress.egress_tiers("aws")  # free 100 GB first, as embedded
    ot.validate_offer_table(result.offers)


def test_malformed_items_are_skipped_with_a_warning(clients):
    pricing, ps, ec2, es = clients
    good = price_item("c7g.large", 0.0725)
    no_type = json.loads(good)
    del no_type["product"]["attributes"]["instanceType"]
    no_price = json.loads(good)
    no_price["terms"]["OnDemand"] = {}
    bad_number = good.replace('"USD": "0.0725000000"', '"USD": "n/a"')
    items = ["{not json", json.dumps(no_type), json.dumps(no_price), bad_number, good]
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": items},
                    products_params("c7g.large"))
    _stub_specs_spot_egress(ps, es, ["c7g.large"], [instance_info("c7g.large", 2, 4096, "arm64")], [])

    result = aws.fetch_offers(REGION, instance_types=["c7g.large"], pricing=pricing, ec2=ec2,
                              sleep=lambda s: None, now=NOW)

    assert list(result.offers[ot.OFFER]) == ["aws:us-east-1:c7g.large"]
    row = result.offers.iloc[0]
    assert row[ot.HARDWARE] == "arm-neoverse-v1-2c" and row[ot.ARCH] == "aarch64"
    assert math.isnan(row[ot.SPOT_HOURLY_USD])
    malformed = [w for w in result.warnings if "malformed" in w]
    assert len(malformed) == 4
    assert any("not JSON" in w for w in malformed)
    assert any("instanceType" in w for w in malformed)


def test_types_without_a_hardware_class_or_price_are_dropped_with_a_warning(clients):
    pricing, ps, ec2, es = clients
    types = ["c7a.large", "x2iedn.xlarge", "g6.xlarge"]
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("c7a.large", 0.10264)]}, products_params("c7a.large"))
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("x2iedn.xlarge", 0.83363, vcpu="4", memory="128 GiB")]},
        products_params("x2iedn.xlarge"))
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []},
                    products_params("g6.xlarge"))  # not sold in this region
    infos = [instance_info("c7a.large", 2, 4096), instance_info("x2iedn.xlarge", 4, 131072)]
    _stub_specs_spot_egress(ps, es, types, infos, [])

    result = aws.fetch_offers(REGION, instance_types=types, pricing=pricing, ec2=ec2, now=NOW)

    assert list(result.offers[ot.INSTANCE_TYPE]) == ["c7a.large"]
    assert any("no known hardware class" in w and "x2iedn.xlarge" in w for w in result.warnings)
    assert any("no Linux on-demand price" in w and "g6.xlarge" in w for w in result.warnings)


def test_denied_spec_and_spot_calls_fall_back_with_warnings(clients):
    pricing, ps, ec2, es = clients
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("g4dn.xlarge", 0.526, vcpu="4", memory="16 GiB")]}, products_params("g4dn.xlarge"))
    es.add_client_error("describe_instance_types", service_error_code="UnauthorizedOperation",
                        service_message="You are not authorized", http_status_code=403)
    es.add_client_error("describe_spot_price_history", service_error_code="UnauthorizedOperation",
                        service_message="You are not authorized", http_status_code=403)
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []}, EGRESS_PARAMS)

    result = aws.fetch_offers(REGION, instance_types=["g4dn.xlarge"], pricing=pricing, ec2=ec2,
                              now=NOW)

    row = result.offers.iloc[0]
    assert (row[ot.HARDWARE], row[ot.VCPUS], row[ot.ACCELERATOR_COUNT]) == ("nvidia-t4", 4, 1)
    assert "specs from the embedded snapshot" in row[ot.PRICE_SOURCE]
    assert any("DescribeInstanceTypes" in w and "UnauthorizedOperation" in w for w in result.warnings)
    assert any("DescribeSpotPriceHistory" in w for w in result.warnings)
    assert result.egress_tiers is None
    assert any("egress" in w for w in result.warnings)


def test_throttling_that_does_not_stop_becomes_a_fetch_error(clients):
    pricing, ps, ec2, _ = clients
    for _ in range(aws.RETRIES + 1):
        ps.add_client_error("get_products", service_error_code="ThrottlingException",
                            service_message="Rate exceeded", http_status_code=400)
    sleeps = []
    with pytest.raises(PriceFetchError) as exc:
        aws.fetch_offers(REGION, instance_types=["c7a.large"], pricing=pricing, ec2=ec2,
                         sleep=sleeps.append, now=NOW)
    assert len(sleeps) == aws.RETRIES
    assert all(0 < s <= 30 for s in sleeps)
    message = str(exc.value)
    assert "\n" not in message and "ThrottlingException" in message


def test_access_denied_on_prices_is_a_fetch_error(clients):
    pricing, ps, ec2, _ = clients
    ps.add_client_error("get_products", service_error_code="AccessDeniedException",
                        service_message="User is not authorized to perform: pricing:GetProducts",
                        http_status_code=400)
    with pytest.raises(PriceFetchError, match=r"^aws: Price List API \(GetProducts\) failed: "
                                              r"AccessDeniedException"):
        aws.fetch_offers(REGION, instance_types=["c7a.large"], pricing=pricing, ec2=ec2, now=NOW)


# --- paging helper on its own ------------------------------------------------------------------


def test_paginate_resumes_at_the_throttled_page(clients):
    pricing, ps, _, _ = clients
    base = {"ServiceCode": "AmazonEC2", "Filters": ec2_filters("c7a.large"), "FormatVersion": "aws_v1"}
    ps.add_response("get_products", {"PriceList": ["a"], "NextToken": "p2"}, base)
    ps.add_client_error("get_products", service_error_code="ThrottlingException",
                        http_status_code=400, expected_params=base | {"NextToken": "p2"})
    ps.add_response("get_products", {"PriceList": ["b"], "NextToken": "p3"}, base | {"NextToken": "p2"})
    ps.add_response("get_products", {"PriceList": ["c"]}, base | {"NextToken": "p3"})
    sleeps = []
    items = list(aws.paginate(pricing, "get_products", base, "PriceList", sleep=sleeps.append))
    assert items == ["a", "b", "c"] and len(sleeps) == 1


# --- no credentials, no network ----------------------------------------------------------------


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance role


def test_no_credentials_is_one_clear_line(no_aws_credentials):
    # Real clients through the default chain; botocore fails at signing, before any request.
    with pytest.raises(PriceFetchError) as exc:
        aws.fetch_offers(REGION, instance_types=["c7a.large"])
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("aws: no credentials found by the default chain")


def test_no_network_is_one_clear_line():
    config = Config(retries={"max_attempts": 1}, connect_timeout=2)
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x", endpoint_url="http://127.0.0.1:9",
                           config=config)
    with pytest.raises(PriceFetchError) as exc:
        aws.fetch_offers(REGION, instance_types=["c7a.large"], pricing=pricing, ec2=object())
    assert str(exc.value).startswith("aws: cannot reach the Price List API (GetProducts) endpoint")


def test_cli_refresh_without_credentials_exits_2_and_names_the_snapshot(
        no_aws_credentials, monkeypatch, capsys):
    import sys

    from placement.cli import main
    from pricing.snapshot import snapshot_date

    monkeypatch.setattr(sys, "argv", ["placement", "prices", "refresh", "--provider", "aws",
                                      "--region", REGION, "--instance-type", "c7a.large", "--quiet"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("error: aws: no credentials") and snapshot_date() in err


# --- the pure parts ----------------------------------------------------------------------------


def test_regular_zones_and_spot_median_rules():
    history = [spot("m7i.xlarge", z, p) for z, p in (
        ("us-east-1a", 0.08), ("us-east-1b", 0.07), ("us-east-1c", 0.09),
        ("us-east-1-bos-1a", 0.01), ("us-west-2a", 0.5))]
    history.append({**spot("m7i.xlarge", "us-east-1d", 0.2), "ProductDescription": "Windows"})
    assert aws.spot_medians(history, REGION) == {"m7i.xlarge": (pytest.approx(0.08), 3)}


def test_egress_tiers_fold_an_old_free_first_gigabyte():
    item = json.loads(egress_item())
    dims = item["terms"]["OnDemand"]
    term = next(iter(dims.values()))
    first = next(iter(term["priceDimensions"].values()))
    term["priceDimensions"]["free"] = {**first, "beginRange": "0", "endRange": "1",
                                       "pricePerUnit": {"USD": "0.0000000000"}}
    first["beginRange"] = "1"
    assert aws.egress_tiers([json.dumps(item)]) == egress.egress_tiers("aws")
    assert aws.egress_tiers([]) is None


def test_recording_round_trips_through_json(clients):
    pricing, ps, ec2, es = clients
    ps.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item("c7a.large", 0.10264)]}, products_params("c7a.large"))
    _stub_specs_spot_egress(ps, es, ["c7a.large"], [instance_info("c7a.large", 2, 4096)],
                            [spot("c7a.large", "us-east-1a", 0.04)])
    rec = aws.download(REGION, ["c7a.large"], pricing=pricing, ec2=ec2, now=NOW)
    again = aws.Recorded.from_json(json.loads(json.dumps(rec.to_json())))
    a, _ = aws.normalise(rec)
    b, _ = aws.normalise(again)
    assert a.equals(b)
