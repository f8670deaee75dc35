"""The team's own prices: negotiated discounts and a per-offer override CSV."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pricing import table as ot
from pricing.overrides import apply_discounts, apply_overrides
from pricing.snapshot import load_snapshot

C7A = "aws:us-east-1:c7a.large"
D2S = "azure:eastus:Standard_D2s_v5"
PI = "edge:rpi5-8gb"


@pytest.fixture(scope="module")
def snap() -> pd.DataFrame:
    offers = load_snapshot()
    # Give one row reserved prices so every price column is exercised.
    i = offers.index[offers[ot.OFFER] == C7A][0]
    offers.loc[i, [ot.RESERVED_1Y_HOURLY_USD, ot.RESERVED_3Y_HOURLY_USD]] = [0.06, 0.04]
    return offers


def _row(df, offer):
    return df.set_index(ot.OFFER).loc[offer]


def test_discounts_scale_every_cloud_price_of_that_provider(snap):
    out = apply_discounts(snap, {"aws": 20, "azure": 0})
    before, after = _row(snap, C7A), _row(out, C7A)
    for column in (ot.HOURLY_USD, ot.SPOT_HOURLY_USD, ot.RESERVED_1Y_HOURLY_USD,
                   ot.RESERVED_3Y_HOURLY_USD):
        assert after[column] == pytest.approx(before[column] * 0.8), column
    assert after[ot.PRICE_SOURCE] == before[ot.PRICE_SOURCE] + " less 20% negotiated discount"
    assert _row(out, D2S)[ot.HOURLY_USD] == _row(snap, D2S)[ot.HOURLY_USD]  # 0%: untouched
    assert _row(out, D2S)[ot.PRICE_SOURCE] == _row(snap, D2S)[ot.PRICE_SOURCE]
    assert _row(out, PI)[ot.UNIT_USD] == _row(snap, PI)[ot.UNIT_USD]
    assert _row(snap, C7A)[ot.HOURLY_USD] == before[ot.HOURLY_USD]  # input not modified
    nan_spot = out[(out[ot.PROVIDER] == "aws") & out[ot.SPOT_HOURLY_USD].isna()]
    assert len(nan_spot) > 0  # missing prices stay missing


def test_discount_on_edge_lowers_the_unit_price_and_absent_providers_are_ignored(snap):
    out = apply_discounts(snap, {"edge": 10, "gcp": 5})
    assert _row(out, PI)[ot.UNIT_USD] == pytest.approx(_row(snap, PI)[ot.UNIT_USD] * 0.9)
    assert "less 10% negotiated discount" in _row(out, PI)[ot.PRICE_SOURCE]


@pytest.mark.parametrize("percent", [-1, 100, 150, "a lot"])
def test_bad_discounts_are_one_line_errors(snap, percent):
    with pytest.raises(ot.OfferTableError, match=r"^discount_percent\[aws\]"):
        apply_discounts(snap, {"aws": percent})


def _write(tmp_path, text, name="prices.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_overrides_replace_given_cells_and_name_the_file(snap, tmp_path):
    path = _write(tmp_path, (
        "offer,hourly_usd,spot_hourly_usd,reserved_1y_hourly_usd,reserved_3y_hourly_usd,unit_usd,power_w\n"
        f"{C7A},0.09,,0.05,0.03,,\n"
        f"{PI},,,,,70,7.5\n"))
    out = apply_overrides(snap, path)
    c7a, before = _row(out, C7A), _row(snap, C7A)
    assert (c7a[ot.HOURLY_USD], c7a[ot.RESERVED_1Y_HOURLY_USD], c7a[ot.RESERVED_3Y_HOURLY_USD]) == (
        0.09, 0.05, 0.03)
    assert c7a[ot.SPOT_HOURLY_USD] == before[ot.SPOT_HOURLY_USD]  # empty cell: kept
    assert c7a[ot.PRICE_SOURCE] == f"override: {path}"
    assert c7a[ot.PRICE_DATE] == before[ot.PRICE_DATE]
    pi = _row(out, PI)
    assert (pi[ot.UNIT_USD], pi[ot.POWER_W], pi[ot.PRICE_SOURCE]) == (70, 7.5, f"override: {path}")
    assert _row(out, D2S)[ot.PRICE_SOURCE] == _row(snap, D2S)[ot.PRICE_SOURCE]
    assert len(out) == len(snap)


def test_overrides_with_only_some_columns(snap, tmp_path):
    path = _write(tmp_path, f"offer,reserved_3y_hourly_usd\n{D2S},0.031\n")
    out = apply_overrides(snap, path)
    assert _row(out, D2S)[ot.RESERVED_3Y_HOURLY_USD] == 0.031
    assert math.isnan(_row(out, D2S)[ot.RESERVED_1Y_HOURLY_USD])


@pytest.mark.parametrize("text,expected", [
    (f"offer,hourly_usd\n{C7A},0.1\naws:us-east-1:nope.large,0.2\n",
     r"prices\.csv: row 2, column offer: unknown offer 'aws:us-east-1:nope\.large'$"),
    (f"offer,hourly_usd\n{C7A},cheap\n",
     r"prices\.csv: row 1, column hourly_usd: 'cheap' is not a number$"),
    (f"offer,spot_hourly_usd\n{C7A},-0.01\n",
     r"prices\.csv: row 1, column spot_hourly_usd: '-0\.01' must be a positive number$"),
    (f"offer,hourly_usd\n{PI},0.1\n",
     r"prices\.csv: row 1, column hourly_usd: does not apply to edge offer 'edge:rpi5-8gb'"),
    (f"offer,unit_usd\n{C7A},100\n",
     r"prices\.csv: row 1, column unit_usd: does not apply to cloud offer"),
    (f"offer,hourly_usd\n{C7A},0.1\n{C7A},0.2\n",
     r"prices\.csv: row 2, column offer: offer '.*' appears twice$"),
    (f"offer,monthly_usd\n{C7A},70\n", r"prices\.csv: unknown column\(s\) monthly_usd"),
    ("instance,hourly_usd\nc7a.large,0.1\n", r"prices\.csv: no 'offer' column$"),
])
def test_bad_override_files_are_one_line_errors(snap, tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ot.OfferTableError, match=expected) as exc:
        apply_overrides(snap, path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_missing_override_file(snap, tmp_path):
    with pytest.raises(ot.OfferTableError, match="no such file"):
        apply_overrides(snap, tmp_path / "missing.csv")


def test_overrides_then_discounts_compose(snap, tmp_path):
    path = _write(tmp_path, f"offer,hourly_usd\n{C7A},0.1\n")
    out = apply_discounts(apply_overrides(snap, path), {"aws": 10})
    assert _row(out, C7A)[ot.HOURLY_USD] == pytest.approx(0.09)
    assert _row(out, C7A)[ot.PRICE_SOURCE] == f"override: {path} less 10% negotiated discount"
