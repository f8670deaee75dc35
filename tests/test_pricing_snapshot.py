"""The embedded price snapshot, the edge catalog, egress tiers and the pure query functions."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from pricing import egress
from pricing import table as ot
from pricing.edge import load_edge_devices
from pricing.query import apply_discount, has_gpu, price_for_model, select_offers
from pricing.snapshot import load_cloud_snapshot, load_snapshot, snapshot_date
from profiles.hardware import get_hardware, hardware_catalog

SHARED = Path(__file__).parents[1] / ".." / "shared"
SKYPILOT = SHARED / "data" / "catalog-snapshots"


@pytest.fixture(scope="module")
def snap() -> pd.DataFrame:
    return load_snapshot()


@pytest.fixture(scope="module")
def cloud() -> pd.DataFrame:
    return load_cloud_snapshot()


# --- the snapshot itself -----------------------------------------------------------------------


def test_snapshot_loads_validates_and_is_dated(snap):
    assert list(snap.columns) == ot.OFFER_COLUMNS
    ot.validate_offer_table(snap)  # idempotent: the loaded table passes the contract again
    assert snapshot_date() == "2026-11-25"
    assert set(snap[ot.PRICE_DATE]) == {"2026-11-25"}
    assert set(snap[ot.TIER]) == {"cloud", "edge"}
    assert snap[ot.PRICE_SOURCE].str.startswith("snapshot:").all()


def test_loaded_copies_are_independent():
    a = load_snapshot()
    a.loc[0, ot.HOURLY_USD] = -1.0
    assert load_snapshot().loc[0, ot.HOURLY_USD] > 0


def test_offer_ids_follow_the_contract(snap):
    for _, row in snap.iterrows():
        if row[ot.TIER] == "cloud":
            expected = ot.cloud_offer_id(row[ot.PROVIDER], row[ot.REGION], row[ot.INSTANCE_TYPE])
        else:
            expected = ot.edge_offer_id(row[ot.INSTANCE_TYPE])
            assert (row[ot.PROVIDER], row[ot.REGION]) == ("edge", "site")
        assert row[ot.OFFER] == expected


@pytest.mark.parametrize("provider,minimum", [("aws", 40), ("azure", 25)])
def test_coverage_types_and_regions(cloud, provider, minimum):
    mine = cloud[cloud[ot.PROVIDER] == provider]
    regions_per_type = mine.groupby(ot.INSTANCE_TYPE)[ot.REGION].nunique()
    assert len(regions_per_type) >= minimum
    assert regions_per_type.min() >= 3, regions_per_type[regions_per_type < 3]


def test_main_regions_carry_most_types(cloud):
    for provider, regions in {"aws": ("us-east-1", "us-west-2", "eu-west-1"),
                              "azure": ("eastus", "westus2", "southcentralus")}.items():
        mine = cloud[cloud[ot.PROVIDER] == provider]
        for region in regions:
            assert (mine[ot.REGION] == region).sum() >= 0.9 * mine[ot.INSTANCE_TYPE].nunique() - 3


def test_families_the_planner_needs_are_present(cloud):
    types = set(cloud[ot.INSTANCE_TYPE])
    for itype in ("c7a.large", "c7a.xlarge", "c7a.2xlarge", "m7a.large", "c7g.large", "m7g.large",
                  "c8g.large", "c7i.large", "m7i.large", "m5.large", "c6i.large", "g4dn.xlarge",
                  "g5.xlarge", "g6.xlarge", "p4d.24xlarge", "p5.4xlarge", "inf2.xlarge",
                  "Standard_D2ps_v5", "Standard_NC4as_T4_v3", "Standard_NV36ads_A10_v5",
                  "Standard_NC24ads_A100_v4", "Standard_NC40ads_H100_v5"):
        assert itype in types, itype


def test_this_machine_class_is_sold_as_c7a_large(cloud):
    hw = cloud.set_index(ot.OFFER)[ot.HARDWARE]
    assert hw["aws:us-east-1:c7a.large"] == "x86-zen4-2c"
    assert hw["aws:us-east-1:m7a.large"] == "x86-zen4-2c"


def test_prices_are_consistent(snap):
    cloud = snap[snap[ot.TIER] == "cloud"]
    assert (cloud[ot.HOURLY_USD] > 0).all()
    spot = cloud[cloud[ot.SPOT_HOURLY_USD].notna()]
    assert (spot[ot.SPOT_HOURLY_USD] < spot[ot.HOURLY_USD]).all()
    for column in (ot.RESERVED_1Y_HOURLY_USD, ot.RESERVED_3Y_HOURLY_USD):
        known = cloud[cloud[column].notna()]
        assert (known[column] < known[ot.HOURLY_USD]).all()
    assert cloud[[ot.UNIT_USD, ot.POWER_W]].isna().all().all()
    edge = snap[snap[ot.TIER] == "edge"]
    assert edge[[ot.HOURLY_USD, ot.SPOT_HOURLY_USD]].isna().all().all()


def test_specs_are_consistent_with_hardware_classes(snap):
    catalog = hardware_catalog()
    for _, row in snap.iterrows():
        hw = catalog[row[ot.HARDWARE]]
        assert row[ot.ARCH] in ("x86_64", "aarch64")
        assert row[ot.VCPUS] > 0 and row[ot.MEMORY_GIB] > 0
        has_acc = isinstance(row[ot.ACCELERATOR], str)
        assert has_acc == (row[ot.ACCELERATOR_COUNT] > 0), row[ot.OFFER]
        if hw.kind == "cpu":
            assert not has_acc and hw.arch == row[ot.ARCH], row[ot.OFFER]
            assert hw.cores == row[ot.VCPUS], row[ot.OFFER]
        else:
            assert has_acc and row[ot.ACCELERATOR] == hw.name, row[ot.OFFER]
            assert hw.arch == row[ot.ARCH], row[ot.OFFER]


def test_every_offer_maps_to_a_known_hardware_class(snap):
    unknown = set(snap[ot.HARDWARE]) - set(hardware_catalog())
    assert not unknown


# --- reserved prices (read from instances.vantage.sh data, see docs/pricing.md "Reserved") -----

R1, R3 = ot.RESERVED_1Y_HOURLY_USD, ot.RESERVED_3Y_HOURLY_USD
RESERVED_SOURCE = "tsaol/aws-gpu data/gpu_instances_raw.json @2d0108c7 (2025-11-30)"


def _with_reserved(cloud: pd.DataFrame) -> pd.DataFrame:
    return cloud[cloud[R1].notna() | cloud[R3].notna()]


def test_reserved_prices_are_below_on_demand_and_3y_below_1y(cloud):
    known = _with_reserved(cloud)
    assert len(known) == 36
    for column in (R1, R3):
        part = known[known[column].notna()]
        assert (part[column] < part[ot.HOURLY_USD]).all(), column
    both = known[known[R1].notna() & known[R3].notna()]
    assert len(both) == 30
    assert (both[R3] < both[R1]).all()
    # Standard no-upfront discounts as published: about 30-40% off for one year, 50-60% for three.
    off_1y = 1 - known[R1] / known[ot.HOURLY_USD]
    off_3y = 1 - known[R3] / known[ot.HOURLY_USD]
    assert off_1y.dropna().between(0.30, 0.45).all()
    assert off_3y.dropna().between(0.45, 0.65).all()


def test_reserved_prices_name_their_source(cloud):
    known = _with_reserved(cloud)
    assert (known[ot.PROVIDER] == "aws").all()
    assert known[ot.PRICE_SOURCE].str.contains(RESERVED_SOURCE, regex=False).all()
    assert known[ot.PRICE_SOURCE].str.contains("Linux, Standard, No Upfront", regex=False).all()
    rest = cloud.drop(known.index)
    assert not rest[ot.PRICE_SOURCE].str.contains("reserved", regex=False).any()
    # p5 has no 1-year standard term in the source; its rows say "3y" only.
    p5 = known[known[ot.INSTANCE_TYPE].str.startswith("p5.")]
    assert len(p5) == 6 and p5[R1].isna().all() and p5[R3].notna().all()
    assert p5[ot.PRICE_SOURCE].str.contains("reserved (3y):", regex=False).all()


def test_reserved_coverage_of_gpu_offers_in_us_east_1_and_eastus(cloud):
    gpu = cloud[has_gpu(cloud)]
    east = gpu[gpu[ot.REGION] == "us-east-1"]
    assert len(east) == 11
    # Every us-east-1 GPU offer but p3.2xlarge (no reserved price in the source) has one; the
    # two p5 sizes have a 3-year price only.
    assert set(east[east[R1].isna() & east[R3].isna()][ot.INSTANCE_TYPE]) == {"p3.2xlarge"}
    assert east[R3].notna().sum() == 10
    assert east[R1].notna().sum() == 8
    assert set(east[east[R1].isna()][ot.INSTANCE_TYPE]) == {"p3.2xlarge", "p5.4xlarge",
                                                            "p5.48xlarge"}
    hand_checked = east.set_index(ot.INSTANCE_TYPE)
    assert hand_checked.loc["g5.xlarge", R1] == 0.63378
    assert hand_checked.loc["g5.xlarge", R3] == 0.43459
    assert hand_checked.loc["p5.48xlarge", R3] == 23.77728
    # Azure: no public reservation data set was found, so eastus has none.
    eastus = gpu[gpu[ot.REGION] == "eastus"]
    assert len(eastus) == 14
    assert eastus[R1].isna().all() and eastus[R3].isna().all()


# --- hardware classes --------------------------------------------------------------------------


def test_hyperthreaded_classes_count_physical_cores():
    c7i_large = get_hardware("x86-spr-2c")  # c7i.large: 1 core, 2 threads
    assert c7i_large.cores == 2
    assert c7i_large.peak_gflops == pytest.approx(1 * 3.2 * 64)
    c7a_large = get_hardware("x86-zen4-2c")  # c7a.large: 2 whole cores
    assert c7a_large.peak_gflops == pytest.approx(2 * 3.7 * 32)


def test_every_class_names_its_sources():
    for hw in hardware_catalog().values():
        assert hw.sources and all(s.strip() for s in hw.sources), hw.name
        if hw.kind == "gpu":
            assert hw.overhead_ms > 0


def test_gpu_and_cpu_targets_parse_in_tvm():
    tvm = pytest.importorskip("tvm")
    from tvm.target import codegen

    x86_cpus = set(codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm"})))
    arm_cpus = set(codegen.llvm_get_cpu_archlist(
        tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu"})))
    for hw in hardware_catalog().values():
        if hw.tvm_target is None:
            assert hw.kind == "npu", hw.name
            continue
        target = tvm.target.Target(hw.tvm_target)
        if hw.kind == "gpu":
            assert target.kind.name == "cuda" and hw.tvm_target["arch"].startswith("sm_")
            host = hw.tvm_target["host"]
        else:
            host = hw.tvm_target
        if "mcpu" in host:
            known = arm_cpus if "aarch64" in host.get("mtriple", "") else x86_cpus
            assert host["mcpu"] in known, (hw.name, host["mcpu"])


# --- agreement with the SkyPilot catalog rows in shared/ ---------------------------------------


def _regular_zone(zone: str) -> bool:
    return zone.count("-") == 1  # use1-az1, not the Local Zone use1-atl2-az1


@pytest.mark.parametrize("provider", ["aws", "azure"])
def test_on_demand_and_spot_agree_with_skypilot_subset(cloud, provider):
    path = SKYPILOT / provider / "vms.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present (shared/ is not checked out beside the repo)")
    ref = pd.read_csv(path)
    if provider == "aws":
        ref = ref[ref["AvailabilityZone"].map(_regular_zone)]
    mine = cloud[cloud[ot.PROVIDER] == provider].set_index([ot.INSTANCE_TYPE, ot.REGION])
    checked = 0
    for (itype, region), grp in ref.groupby(["InstanceType", "Region"]):
        if (itype, region) not in mine.index:
            continue
        row = mine.loc[(itype, region)]
        prices = grp["Price"].dropna().unique()
        assert len(prices) == 1
        assert row[ot.HOURLY_USD] == pytest.approx(float(prices[0]), rel=0.01), (itype, region)
        spots = [float(s) for s in grp["SpotPrice"].dropna()]
        expected = statistics.median(spots) if spots else math.nan
        if not expected < row[ot.HOURLY_USD]:
            expected = math.nan  # spot == on-demand means no spot capacity was seen
        if math.isnan(expected):
            assert math.isnan(row[ot.SPOT_HOURLY_USD]), (itype, region)
        else:
            assert row[ot.SPOT_HOURLY_USD] == pytest.approx(expected, rel=1e-6), (itype, region)
        checked += 1
    assert checked >= (35 if provider == "aws" else 20)


# --- the edge catalog --------------------------------------------------------------------------


def test_edge_catalog(snap):
    devices = load_edge_devices().set_index("device")
    for device in ("rpi4-8gb", "rpi5-8gb", "jetson-orin-nano-super", "n100-minipc-16gb"):
        assert device in devices.index
        assert devices.loc[device, ot.UNIT_USD] > 0 and devices.loc[device, ot.POWER_W] > 0
    edge = snap[snap[ot.TIER] == "edge"].set_index(ot.INSTANCE_TYPE)
    assert edge.loc["rpi5-8gb", ot.HARDWARE] == "arm-cortex-a76-4c"
    assert edge.loc["rpi4-8gb", ot.HARDWARE] == "arm-cortex-a72-4c"
    assert edge.loc["jetson-orin-nano-super", ot.ACCELERATOR] == "nvidia-orin-nano"
    assert "power:" in edge.loc["rpi5-8gb", ot.PRICE_SOURCE]


# --- egress ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gb,usd", [
    (0, 0.0),
    (50, 0.0),
    (100, 0.0),
    (1100, 1000 * 0.09),
    (100 + 10240, 10240 * 0.09),
    (100 + 10240 + 1000, 10240 * 0.09 + 1000 * 0.085),
    (100 + 10240 + 40960 + 102400 + 1000, 10240 * 0.09 + 40960 * 0.085 + 102400 * 0.07 + 50.0),
])
def test_aws_egress_tiers_hand_checked(gb, usd):
    assert egress.monthly_egress_usd("aws", gb) == pytest.approx(usd)


def test_azure_egress_and_marginal_prices():
    assert egress.monthly_egress_usd("azure", 1100) == pytest.approx(1000 * 0.087)
    assert egress.marginal_egress_usd_per_gb("azure", 50) == 0.0
    assert egress.marginal_egress_usd_per_gb("aws", 100) == 0.09  # the free tier is used up
    assert egress.marginal_egress_usd_per_gb("aws", 100 + 10240) == 0.085
    assert egress.marginal_egress_usd_per_gb("aws", 1e9) == 0.05
    assert egress.egress_tiers("aws")[-1][0] == math.inf
    assert egress.egress_date() in egress.egress_source("aws")
    with pytest.raises(KeyError):
        egress.egress_tiers("gcp")
    with pytest.raises(ValueError):
        egress.monthly_egress_usd("aws", -1)


def test_egress_matches_the_solver_arithmetic():
    from placement.evaluate import tiered_cost_usd

    for provider in egress.providers():
        for gb in (0, 99, 5000, 60000, 300000):
            assert tiered_cost_usd(egress.egress_tiers(provider), gb) == pytest.approx(
                egress.monthly_egress_usd(provider, gb))


# --- queries over a hand-made six-row frame ----------------------------------------------------


def _row(offer, tier, provider, region, itype, hw, *, hourly=None, spot=None, r1=None,
         acc=None, unit=None, power=None):
    return {
        ot.OFFER: offer, ot.TIER: tier, ot.PROVIDER: provider, ot.REGION: region,
        ot.INSTANCE_TYPE: itype, ot.HARDWARE: hw, ot.VCPUS: 4, ot.MEMORY_GIB: 16.0,
        ot.ACCELERATOR: acc, ot.ACCELERATOR_COUNT: 1 if acc else 0, ot.ARCH: "x86_64",
        ot.HOURLY_USD: hourly, ot.SPOT_HOURLY_USD: spot, ot.RESERVED_1Y_HOURLY_USD: r1,
        ot.RESERVED_3Y_HOURLY_USD: None, ot.UNIT_USD: unit, ot.POWER_W: power,
        ot.PRICE_SOURCE: "test", ot.PRICE_DATE: "2026-01-01",
    }


@pytest.fixture
def six() -> pd.DataFrame:
    return ot.validate_offer_table(pd.DataFrame([
        _row("aws:r1:a", "cloud", "aws", "r1", "a", "hw-a", hourly=0.10, spot=0.04, r1=0.07),
        _row("aws:r2:a", "cloud", "aws", "r2", "a", "hw-a", hourly=0.11),
        _row("aws:r1:g", "cloud", "aws", "r1", "g", "hw-g", hourly=1.00, spot=0.40,
             acc="nvidia-t4"),
        _row("azure:e:b", "cloud", "azure", "e", "b", "hw-b", hourly=0.20, spot=0.02),
        _row("edge:pi", "edge", "edge", "site", "pi", "hw-pi", unit=80.0, power=8.0),
        _row("edge:nano", "edge", "edge", "site", "nano", "hw-nano", unit=249.0, power=15.0,
             acc="nvidia-orin-nano"),
    ]))


def _offers(df):
    return list(df[ot.OFFER])


def test_select_by_provider_region_and_type(six):
    assert _offers(select_offers(six)) == _offers(six)
    assert _offers(select_offers(six, providers=["aws"])) == ["aws:r1:a", "aws:r2:a", "aws:r1:g"]
    assert _offers(select_offers(six, regions=["r1"])) == ["aws:r1:a", "aws:r1:g"]
    assert _offers(select_offers(six, instance_types=["a"])) == ["aws:r1:a", "aws:r2:a"]
    assert _offers(select_offers(six, devices=["pi"])) == ["edge:pi"]
    assert _offers(select_offers(six, instance_types=["b"], devices=["nano"])) == [
        "azure:e:b", "edge:nano"]


def test_select_by_gpu_and_price(six):
    assert _offers(select_offers(six, gpu=True)) == ["aws:r1:g", "edge:nano"]
    assert "aws:r1:g" not in _offers(select_offers(six, gpu=False))
    assert _offers(select_offers(six, providers=["aws", "azure"], max_hourly=0.15)) == [
        "aws:r1:a", "aws:r2:a"]
    # Under spot, an offer with no spot price is dropped and the cap applies to spot prices.
    assert _offers(select_offers(six, providers=["aws", "azure"], pricing_model="spot",
                                 max_hourly=0.5)) == ["aws:r1:a", "aws:r1:g", "azure:e:b"]
    assert _offers(select_offers(six, pricing_model="reserved-1y", providers=["aws"])) == [
        "aws:r1:a"]
    # Edge devices have no hourly price and are not filtered by it.
    assert "edge:pi" in _offers(select_offers(six, max_hourly=0.01))
    with pytest.raises(ValueError):
        select_offers(six, pricing_model="reserved-5y")


def test_price_for_model(six):
    assert list(price_for_model(six, "on-demand").iloc[:4]) == [0.10, 0.11, 1.00, 0.20]
    spot = price_for_model(six, "spot")
    assert spot.iloc[0] == 0.04 and math.isnan(spot.iloc[1])
    assert price_for_model(six, "reserved-1y").iloc[0] == 0.07
    assert price_for_model(six, "reserved-3y").isna().all()
    with pytest.raises(ValueError):
        price_for_model(six, "monthly")
    assert list(has_gpu(six)) == [False, False, True, False, False, True]


def test_apply_discount(six):
    out = apply_discount(six, "aws", 20)
    assert out.loc[0, ot.HOURLY_USD] == pytest.approx(0.08)
    assert out.loc[0, ot.SPOT_HOURLY_USD] == pytest.approx(0.032)
    assert out.loc[0, ot.RESERVED_1Y_HOURLY_USD] == pytest.approx(0.056)
    assert math.isnan(out.loc[1, ot.SPOT_HOURLY_USD])
    assert out.loc[3, ot.HOURLY_USD] == 0.20  # azure untouched
    assert "20% discount" in out.loc[0, ot.PRICE_SOURCE] and out.loc[3, ot.PRICE_SOURCE] == "test"
    assert six.loc[0, ot.HOURLY_USD] == 0.10  # the input is not modified
    edge = apply_discount(six, "edge", 10)
    assert edge.loc[4, ot.UNIT_USD] == pytest.approx(72.0)
    with pytest.raises(ValueError):
        apply_discount(six, "gcp", 10)
    with pytest.raises(ValueError):
        apply_discount(six, "aws", 100)


def test_queries_run_on_the_real_snapshot(snap):
    gpus = select_offers(snap, providers=["aws"], regions=["us-east-1"], gpu=True)
    assert set(gpus[ot.ACCELERATOR]) >= {"nvidia-t4", "nvidia-a10g", "nvidia-l4", "nvidia-h100"}
    cheap = select_offers(snap, providers=["aws", "azure"], max_hourly=0.1)
    assert (cheap[ot.HOURLY_USD] <= 0.1).all() and len(cheap) > 10
