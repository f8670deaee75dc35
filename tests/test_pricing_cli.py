"""`placement prices` and `placement prices refresh`, with the fetcher replaced (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from factories import run_cli

from pricing import cache
from pricing import table as ot
from pricing.fetch import FetchResult, PriceFetchError
from pricing.snapshot import load_snapshot, snapshot_date

C7A = "aws:us-east-1:c7a.large"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(tmp_path / "cache"))



def fake_fetch(provider, region, *, instance_types=None, on_progress=None):
    if on_progress:
        on_progress(f"{provider} {region}: prices")
    snap = load_snapshot()
    rows = snap[(snap[ot.PROVIDER] == provider) & (snap[ot.REGION] == region)].copy()
    rows[ot.HOURLY_USD] = rows[ot.HOURLY_USD] * 0.9
    rows[ot.RESERVED_1Y_HOURLY_USD] = rows[ot.HOURLY_USD] * 0.6
    rows[ot.PRICE_SOURCE] = "AWS Price List API (test)"
    rows[ot.PRICE_DATE] = "2026-12-01"
    return FetchResult(provider=provider, region=region, offers=rows.reset_index(drop=True),
                       fetched_at="2026-12-01T12:00:00+00:00", source="test",
                       warnings=["1 malformed item skipped"])


def failing_fetch(provider, region, *, instance_types=None, on_progress=None):
    raise PriceFetchError(f"{provider}: cannot reach the Price List API endpoint (test)")


def test_refresh_then_list_shows_fetched_prices_and_their_date(monkeypatch, capsys):
    monkeypatch.setattr(cache, "fetch_offers", fake_fetch)
    code, out, err = run_cli(monkeypatch, capsys, "prices", "refresh", "--provider", "aws",
                             "--region", "us-east-1")
    assert code == 0, err
    assert "aws us-east-1:" in out and "offers fetched 2026-12-01" in out
    assert "warning: 1 malformed item skipped" in err
    assert cache.csv_path("aws", "us-east-1").is_file()

    code, out, err = run_cli(monkeypatch, capsys, "prices", "--provider", "aws", "--region",
                             "us-east-1", "--json")
    rows = {r[ot.OFFER]: r for r in json.loads(out)}
    assert rows[C7A][ot.PRICE_DATE] == "2026-12-01"
    assert rows[C7A][ot.RESERVED_1Y_HOURLY_USD] > 0

    code, out, err = run_cli(monkeypatch, capsys, "prices", "--provider", "aws")
    assert code == 0 and f"prices as of {snapshot_date()}, 2026-12-01" in out


def test_a_failed_refresh_exits_2_with_one_line_and_keeps_the_old_prices(monkeypatch, capsys):
    monkeypatch.setattr(cache, "fetch_offers", fake_fetch)
    assert run_cli(monkeypatch, capsys, "prices", "refresh", "--provider", "aws", "--region",
                   "us-east-1", "--quiet")[0] == 0
    monkeypatch.setattr(cache, "fetch_offers", failing_fetch)
    code, _, err = run_cli(monkeypatch, capsys, "prices", "refresh", "--provider", "aws",
                           "--region", "us-east-1", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: aws: cannot reach") and "keeping the prices fetched" in err
    offers, _ = cache.load_offers(["aws"], ["us-east-1"])
    assert offers.set_index(ot.OFFER).loc[C7A, ot.PRICE_DATE] == "2026-12-01"


def test_fresh_regions_are_skipped(monkeypatch, capsys):
    monkeypatch.setattr(cache, "fetch_offers", fake_fetch)
    run_cli(monkeypatch, capsys, "prices", "refresh", "--provider", "aws", "--region", "us-east-1")
    monkeypatch.setattr(cache, "fetch_offers", failing_fetch)
    code, out, _ = run_cli(monkeypatch, capsys, "prices", "refresh", "--provider", "aws",
                           "--region", "us-east-1", "--max-age-days", "100000")
    assert code == 0 and "fresh" in out


def test_gpu_listing_shows_on_demand_spot_and_reserved_columns(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "prices", "--gpu", "--provider", "aws",
                           "--region", "us-east-1")
    assert code == 0
    header = next(line for line in out.splitlines() if "┃ offer" in line)
    for column in ("on-demand $/h", "spot $/h", "1y RI $/h", "3y RI $/h", "price date"):
        assert column in header
    assert "g5.xlarge" in out and "c7a.large" not in out
    assert f"prices as of {snapshot_date()}" in out


def test_listing_warns_about_stale_prices(monkeypatch, capsys):
    monkeypatch.setattr(cache, "utc_now", lambda: datetime(2027, 6, 1, tzinfo=UTC))
    code, out, err = run_cli(monkeypatch, capsys, "prices", "--provider", "edge",
                             "--max-age-days", "90")
    assert code == 0 and "rpi5-8gb" in out
    assert err.startswith(f"warning: prices dated {snapshot_date()} are ")
    assert "(more than 90)" in err
