"""`python -m pricing.build_snapshot` over recorded responses, and the hardware map it shares
with the snapshot compiler and the live fetchers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from test_pricing_aws import instance_info, price_item
from test_pricing_azure import item

from pricing import aws, azure, build_snapshot
from pricing import table as ot
from pricing.hardware_map import hardware_for
from pricing.snapshot import load_cloud_snapshot
from profiles.hardware import hardware_catalog

FETCHED_AT = "2026-12-01T12:00:00+00:00"


def aws_recording() -> aws.Recorded:
    ts = datetime(2026, 12, 1, 11, tzinfo=UTC).isoformat()
    return aws.Recorded(
        region="us-east-1", fetched_at=FETCHED_AT,
        price_list=[price_item("c7a.large", 0.10264, r1=0.0647, r3=0.0445),
                    price_item("g5.xlarge", 1.006, vcpu="4", memory="16 GiB"),
                    price_item("x2iedn.xlarge", 0.83363, vcpu="4", memory="128 GiB")],
        instance_types=[instance_info("c7a.large", 2, 4096),
                        instance_info("g5.xlarge", 4, 16384, gpus=("A10G", 1, 22888)),
                        instance_info("x2iedn.xlarge", 4, 131072)],
        spot_price_history=[{"AvailabilityZone": z, "InstanceType": "c7a.large",
                             "ProductDescription": "Linux/UNIX", "SpotPrice": p, "Timestamp": ts}
                            for z, p in (("us-east-1a", "0.0419"), ("us-east-1b", "0.0498"),
                                         ("us-east-1c", "0.0566"))],
        instance_types_asked=["c7a.large", "g5.xlarge", "x2iedn.xlarge"])


def azure_recording() -> azure.Recorded:
    return azure.Recorded(
        region="eastus", fetched_at="2026-11-30T08:00:00+00:00", instance_types=None,
        retail_items=[item("Standard_D2s_v5", 0.096),
                      item("Standard_D2s_v5", 0.01056, sku_name="D2s v5 Spot"),
                      item("Standard_D2s_v5", 499.32, price_type="Reservation", term="1 Year"),
                      item("Standard_D2s_v5", 0.188, product="Virtual Machines Dsv5 Series Windows")],
        resource_skus=None)


def _record(directory, provider, rec):
    path = directory / provider / f"{rec.region}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec.to_json()))


def test_build_from_recorded_uses_the_fetchers_normalisation(tmp_path, capsys):
    rec_dir, out = tmp_path / "recorded", tmp_path / "snap.csv"
    _record(rec_dir, "aws", aws_recording())
    _record(rec_dir, "azure", azure_recording())

    assert build_snapshot.main(["--from-recorded", str(rec_dir), "--out", str(out)]) == 0

    captured = capsys.readouterr()
    assert "x2iedn.xlarge" in captured.err and "no known hardware class" in captured.err
    snap = ot.validate_offer_table(pd.read_csv(out, dtype={ot.PRICE_DATE: str}))
    assert list(snap[ot.OFFER]) == ["aws:us-east-1:c7a.large", "aws:us-east-1:g5.xlarge",
                                    "azure:eastus:Standard_D2s_v5"]
    assert set(snap[ot.PRICE_DATE]) == {"2026-12-01"}  # one date: the latest fetch
    assert snap[ot.PRICE_SOURCE].str.startswith("snapshot: ").all()
    # The same rows a live refresh produces from these responses, but for prefix and date.
    live, _ = aws.normalise(aws_recording())
    built = snap[snap[ot.PROVIDER] == "aws"].reset_index(drop=True)
    for column in (ot.OFFER, ot.HARDWARE, ot.HOURLY_USD, ot.SPOT_HOURLY_USD,
                   ot.RESERVED_1Y_HOURLY_USD, ot.ACCELERATOR_COUNT):
        pd.testing.assert_series_equal(built[column], live[column], check_dtype=False)
    d2s = snap.set_index(ot.OFFER).loc["azure:eastus:Standard_D2s_v5"]
    assert d2s[ot.HOURLY_USD] == 0.096 and d2s[ot.RESERVED_1Y_HOURLY_USD] == pytest.approx(0.057)
    assert "specs from the embedded snapshot" in d2s[ot.PRICE_SOURCE]


def test_build_live_records_then_builds_from_the_recording(tmp_path, monkeypatch):
    monkeypatch.setattr(aws, "download", lambda region, types, **kw: aws_recording())
    monkeypatch.setattr(azure, "download", lambda region, types, **kw: azure_recording())
    rec_dir, out = tmp_path / "rec", tmp_path / "snap.csv"
    code = build_snapshot.main(["--live", "--record", str(rec_dir), "--out", str(out),
                                "--aws-regions", "us-east-1", "--azure-regions", "eastus",
                                "--date", "2026-12-02"])
    assert code == 0
    assert (rec_dir / "aws" / "us-east-1.json").is_file()
    assert (rec_dir / "azure" / "eastus.json").is_file()
    snap = pd.read_csv(out, dtype={ot.PRICE_DATE: str})
    assert set(snap[ot.PRICE_DATE]) == {"2026-12-02"} and len(snap) == 3


def test_build_without_recordings_is_a_one_line_error(tmp_path, capsys):
    assert build_snapshot.main(["--from-recorded", str(tmp_path), "--out",
                                str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no recordings" in err and "\n" not in err
    assert not (tmp_path / "x.csv").exists()


# --- the hardware map --------------------------------------------------------------------------


def test_every_snapshot_offer_gets_its_class_from_the_hardware_map():
    for _, row in load_cloud_snapshot().iterrows():
        specs = {ot.VCPUS: row[ot.VCPUS], ot.ARCH: row[ot.ARCH],
                 ot.ACCELERATOR_COUNT: row[ot.ACCELERATOR_COUNT]}
        assert hardware_for(row[ot.PROVIDER], row[ot.INSTANCE_TYPE], specs) == row[ot.HARDWARE]
        assert hardware_for(row[ot.PROVIDER], row[ot.INSTANCE_TYPE], {}) == row[ot.HARDWARE]


@pytest.mark.parametrize("provider,itype,specs,expected", [
    ("aws", "c7a.large", {}, "x86-zen4-2c"),
    ("aws", "c7a.4xlarge", {"vcpus": 16}, "x86-zen4-16c"),
    ("aws", "r7a.xlarge", {}, "x86-zen4-4c"),
    ("aws", "c7a.8xlarge", {}, None),  # x86-zen4-32c is not in the catalog
    ("aws", "c7g.medium", {"vcpus": 1}, None),
    ("aws", "c7g.large", {"arch": "x86_64"}, None),  # specs contradict the family
    ("aws", "g4dn.2xlarge", {"accelerator_count": 1, "accelerator_name": "T4"}, "nvidia-t4"),
    ("aws", "g5.xlarge", {"accelerator_name": "L4"}, None),  # device name disagrees
    ("aws", "inf2.48xlarge", {"accelerator_count": 12, "accelerator_name": "Inferentia2"},
     "aws-inferentia2"),
    ("aws", "t3.micro", {}, None),
    ("azure", "Standard_D4as_v5", {}, "x86-zen3-4c"),
    ("azure", "Standard_D8plds_v5", {}, "arm-neoverse-n1-8c"),
    ("azure", "Standard_E4s_v5", {}, "x86-icx-4c"),
    ("azure", "Standard_D2as_v6", {}, None),  # Genoa with SMT: no class for it
    ("azure", "Standard_NV12ads_A10_v5", {}, None),  # a fraction of one A10
    ("azure", "Standard_NC12s_v3", {"accelerator_count": 2}, "nvidia-v100-pcie"),
    ("azure", "Standard_ND96amsr_A100_v4", {}, None),  # A100 80GB SXM: no class
    ("azure", "Standard_E4-2ds_v5", {}, None),  # constrained vCPU size
    ("gcp", "n2-standard-2", {}, None),
])
def test_hardware_for_examples(provider, itype, specs, expected):
    assert hardware_for(provider, itype, specs) == expected
    if expected:
        assert expected in hardware_catalog()
