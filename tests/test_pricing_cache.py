"""The catalog cache: atomic writes under a lock, hand-edited files left alone, failed refreshes
keep the old prices, cached rows win over the snapshot, stale-date warnings. No network: the
fetcher is a function the test passes in."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from filelock import FileLock

from pricing import cache
from pricing import table as ot
from pricing.fetch import FetchResult, PriceFetchError
from pricing.snapshot import load_snapshot, snapshot_date

REGION = "us-east-1"
FETCHED_AT = "2026-12-01T12:00:00+00:00"
C7A = "aws:us-east-1:c7a.large"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A fresh cache root per test (the suite-wide one is shared by every test)."""
    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(tmp_path / "cache"))


def fetched(hourly=0.2, fetched_at=FETCHED_AT, region=REGION) -> FetchResult:
    """What a fetcher returns: the snapshot's c7a.large row at a new price and date."""
    snap = load_snapshot()
    row = snap[snap[ot.OFFER] == C7A].copy()
    row[ot.REGION] = region
    row[ot.OFFER] = ot.cloud_offer_id("aws", region, "c7a.large")
    row[ot.HOURLY_USD] = hourly
    row[ot.RESERVED_1Y_HOURLY_USD] = hourly * 0.6
    row[ot.PRICE_SOURCE] = "AWS Price List API (test)"
    row[ot.PRICE_DATE] = fetched_at[:10]
    return FetchResult(provider="aws", region=region, offers=row.reset_index(drop=True),
                       fetched_at=fetched_at, source="test fetcher",
                       warnings=["a warning from the fetch"],
                       egress_tiers=((100.0, 0.0), (10240.0, 0.09), (float("inf"), 0.05)))


class Fetcher:
    def __init__(self, *results):
        self.results = list(results)
        self.calls = []

    def __call__(self, provider, region, *, instance_types=None, on_progress=None):
        self.calls.append((provider, region))
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


def _now(days_after_fetch: float) -> datetime:
    return datetime(2026, 12, 1, 12, tzinfo=UTC) + timedelta(days=days_after_fetch)


# --- refresh and the files it writes -----------------------------------------------------------


def test_refresh_writes_csv_and_meta_atomically():
    result = cache.refresh("aws", REGION, fetch=Fetcher(fetched()))
    assert result.status == "fetched" and result.ok and result.rows == 1
    assert result.warnings == ["a warning from the fetch"]
    csv, meta_file = cache.csv_path("aws", REGION), cache.meta_path("aws", REGION)
    assert csv == cache.catalog_dir() / "aws" / f"{REGION}.csv" and csv.is_file()
    meta = json.loads(meta_file.read_text())
    assert meta["fetched_at"] == FETCHED_AT and meta["source"] == "test fetcher"
    assert meta["rows"] == 1 and not cache.is_user_edited("aws", REGION)
    assert not list(csv.parent.glob(".*.tmp"))  # no temp files left behind
    assert cache.cached_egress_tiers("aws", REGION)[-1] == (float("inf"), 0.05)
    table = pd.read_csv(csv)
    assert list(table.columns) == ot.OFFER_COLUMNS and table.loc[0, ot.HOURLY_USD] == 0.2


def test_a_crash_while_writing_leaves_the_old_file(monkeypatch):
    cache.refresh("aws", REGION, fetch=Fetcher(fetched(hourly=0.2)))
    before = cache.csv_path("aws", REGION).read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr("pricing.cache.os.replace", crash)
        with pytest.raises(OSError):
            cache.refresh("aws", REGION, fetch=Fetcher(fetched(hourly=0.3)))
    assert cache.csv_path("aws", REGION).read_bytes() == before
    assert not cache.is_user_edited("aws", REGION)


def test_fresh_cache_is_not_fetched_again_and_stale_cache_is():
    cache.refresh("aws", REGION, fetch=Fetcher(fetched()))
    idle = Fetcher()
    result = cache.refresh("aws", REGION, fetch=idle, max_age_days=7, now=_now(3))
    assert result.status == "fresh" and idle.calls == [] and result.fetched_at == FETCHED_AT
    again = Fetcher(fetched(hourly=0.25, fetched_at="2026-12-11T12:00:00+00:00"))
    result = cache.refresh("aws", REGION, fetch=again, max_age_days=7, now=_now(10))
    assert result.status == "fetched" and again.calls == [("aws", REGION)]


def test_refresh_waits_for_the_lock_and_rechecks_freshness():
    """Another process refreshes while we wait for the lock: we do not fetch again."""
    cache.lock_path("aws", REGION).parent.mkdir(parents=True, exist_ok=True)
    holding = threading.Event()

    def other_process():
        with FileLock(str(cache.lock_path("aws", REGION))):
            holding.set()
            time.sleep(0.3)
            cache.write_entry(fetched(hourly=0.21))

    thread = threading.Thread(target=other_process)
    thread.start()
    assert holding.wait(10)
    idle = Fetcher()
    result = cache.refresh("aws", REGION, fetch=idle, max_age_days=7, now=_now(1),
                           lock_timeout_s=20)
    thread.join()
    assert result.status == "fresh" and idle.calls == []


def test_a_held_lock_times_out_into_a_warning():
    cache.lock_path("aws", REGION).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache.lock_path("aws", REGION))):
        result = cache.refresh("aws", REGION, fetch=Fetcher(fetched()), lock_timeout_s=0.2)
    assert result.status == "failed" and not result.ok
    assert "another refresh holds" in result.error


def test_a_hand_edited_file_is_never_overwritten():
    cache.refresh("aws", REGION, fetch=Fetcher(fetched(hourly=0.2)))
    csv = cache.csv_path("aws", REGION)
    edited = csv.read_text().replace(",0.2,", ",0.15,")
    csv.write_text(edited)
    assert cache.is_user_edited("aws", REGION)

    idle = Fetcher()
    result = cache.refresh("aws", REGION, fetch=idle)
    assert result.status == "edited" and idle.calls == [] and "edited by hand" in result.error
    assert csv.read_text() == edited

    offers, warnings = cache.load_offers(["aws"], [REGION])
    assert offers.set_index(ot.OFFER).loc[C7A, ot.HOURLY_USD] == 0.15
    assert any("edited by hand" in w for w in warnings)


def test_a_file_the_user_put_there_without_meta_counts_as_edited():
    csv = cache.csv_path("aws", REGION)
    csv.parent.mkdir(parents=True)
    fetched().offers.to_csv(csv, index=False)
    result = cache.refresh("aws", REGION, fetch=Fetcher(fetched(hourly=9.0)))
    assert result.status == "edited"
    assert pd.read_csv(csv).loc[0, ot.HOURLY_USD] == 0.2


def test_a_failed_refresh_keeps_the_old_file_with_a_warning():
    cache.refresh("aws", REGION, fetch=Fetcher(fetched(hourly=0.2)))
    before = cache.csv_path("aws", REGION).read_bytes()
    result = cache.refresh("aws", REGION, fetch=Fetcher(PriceFetchError("aws: throttled")))
    assert result.status == "kept" and not result.ok and result.error == "aws: throttled"
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("aws: throttled; keeping the prices fetched " + FETCHED_AT)
    assert cache.csv_path("aws", REGION).read_bytes() == before
    offers, _ = cache.load_offers(["aws"], [REGION])
    assert offers.set_index(ot.OFFER).loc[C7A, ot.HOURLY_USD] == 0.2


def test_a_failed_first_refresh_says_the_snapshot_stays():
    result = cache.refresh("aws", REGION, fetch=Fetcher(PriceFetchError("aws: no credentials")))
    assert result.status == "failed" and not cache.csv_path("aws", REGION).exists()
    assert f"the embedded snapshot of {snapshot_date()} stays in use" in result.warnings[0]


# --- reading: cache over snapshot --------------------------------------------------------------


def test_without_a_cache_the_snapshot_is_the_offer_table():
    offers, warnings = cache.load_offers()
    assert offers.equals(load_snapshot()) and warnings == []


def test_cached_rows_win_over_the_snapshot_and_keep_their_own_date():
    cache.refresh("aws", REGION, fetch=Fetcher(fetched(hourly=0.2)))
    cache.refresh("aws", "ca-central-1", fetch=Fetcher(fetched(hourly=0.11, region="ca-central-1")))
    snap = load_snapshot()
    offers, warnings = cache.load_offers()
    assert warnings == []
    assert len(offers) == len(snap) + 1  # one replaced, one new
    assert not offers[ot.OFFER].duplicated().any()
    by_id = offers.set_index(ot.OFFER)
    assert by_id.loc[C7A, ot.HOURLY_USD] == 0.2
    assert by_id.loc[C7A, ot.PRICE_DATE] == "2026-12-01"
    assert by_id.loc[C7A, ot.PRICE_SOURCE] == "AWS Price List API (test)"
    assert by_id.loc["aws:ca-central-1:c7a.large", ot.HOURLY_USD] == 0.11
    other = "aws:us-east-1:c7g.large"  # not fetched: the snapshot's row, date and source
    assert by_id.loc[other, ot.PRICE_DATE] == snapshot_date()
    assert by_id.loc[other, ot.PRICE_SOURCE].startswith("snapshot:")
    ot.validate_offer_table(offers)


def test_load_offers_filters_providers_and_regions():
    cache.refresh("aws", REGION, fetch=Fetcher(fetched()))
    aws_east, _ = cache.load_offers(["aws"], [REGION])
    assert set(aws_east[ot.PROVIDER]) == {"aws"} and set(aws_east[ot.REGION]) == {REGION}
    east_and_edge, _ = cache.load_offers(regions=[REGION])
    assert set(east_and_edge[ot.TIER]) == {"cloud", "edge"}  # regions filter cloud offers only
    assert set(east_and_edge.loc[east_and_edge[ot.TIER] == "cloud", ot.REGION]) == {REGION}
    azure, _ = cache.load_offers(["azure"])
    assert set(azure[ot.PROVIDER]) == {"azure"}


def test_an_unreadable_cache_file_is_skipped_with_a_warning():
    csv = cache.csv_path("aws", REGION)
    csv.parent.mkdir(parents=True)
    csv.write_text("offer,tier\nnot,an offer table\n")
    offers, warnings = cache.load_offers()
    assert offers.equals(load_snapshot())
    assert len(warnings) == 1 and "unusable" in warnings[0] and str(csv) in warnings[0]


def test_stale_price_warning():
    assert cache.stale_price_warning("2026-11-25", 30, today=date(2026, 12, 1)) is None
    warning = cache.stale_price_warning("2026-11-25", 30, today=date(2027, 1, 5))
    assert warning.startswith("prices dated 2026-11-25 are 41 days old (more than 30)")
    assert "placement prices refresh" in warning and "\n" not in warning
    assert "not an ISO date" in cache.stale_price_warning("last week", 30)


def test_load_offers_warns_about_each_stale_price_date():
    cache.refresh("aws", REGION, fetch=Fetcher(fetched()))
    _, warnings = cache.load_offers(max_age_days=30, today=date(2026, 12, 20))
    assert len(warnings) == 0  # 2026-11-25 and 2026-12-01 are both within 30 days
    _, warnings = cache.load_offers(max_age_days=20, today=date(2026, 12, 20))
    assert len(warnings) == 1 and snapshot_date() in warnings[0]
    _, warnings = cache.load_offers(max_age_days=5, today=date(2026, 12, 20))
    assert len(warnings) == 2
