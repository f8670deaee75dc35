"""The profile store: SQLite rows keyed like the cache, CSV export/import, the CLI sub-app."""

from __future__ import annotations

import math
import sqlite3

import pandas as pd
import pytest
from typer.testing import CliRunner

from placement.cli_store import profiles_app
from profiles.cache import ProfileCache
from profiles.paths import CACHE_ENV
from profiles.store import IMPORTED, ProfileStore, imported_key, read_profile_csv
from profiles.table import (
    ERROR_BAND,
    LATENCY_MS_P50,
    PROFILE_COLUMNS,
    SOURCE,
    ProfileTableError,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def row(piece="det", hardware="x86-zen4-2c", runtime="onnxruntime", batch=1, p50=10.0,
        source="measured-local", band=math.nan) -> dict:
    return {"piece": piece, "hardware": hardware, "runtime": runtime, "batch": batch,
            "latency_ms_p50": p50, "latency_ms_p95": p50 * 1.2, "memory_mb": 50.0,
            "source": source, "measured_at": "2025-01-01T00:00:00+00:00",
            "tvm_version": "0.27.0.post1", "error_band": band}


def test_store_roundtrip_typed_and_keyed(tmp_path):
    store = ProfileStore(tmp_path / "rows.sqlite")
    assert len(store) == 0 and store.table().empty
    assert list(store.table().columns) == PROFILE_COLUMNS
    store.put_rows([("k1", row()), ("k2", row(runtime="tvm", p50=200.0, band=0.3,
                                               source="estimated"))])
    table = store.table()
    assert list(table.columns) == PROFILE_COLUMNS and len(table) == 2
    assert table["batch"].dtype == "int64" and table[LATENCY_MS_P50].dtype == "float64"
    assert math.isnan(table.set_index("runtime").loc["onnxruntime", ERROR_BAND])
    assert table.set_index("runtime").loc["tvm", ERROR_BAND] == 0.3
    store.put_row("k1", row(p50=11.0))  # same key replaces
    assert len(store) == 2 and store.table(runtime="onnxruntime")[LATENCY_MS_P50].item() == 11.0
    assert list(store.table(source="estimated")["runtime"]) == ["tvm"]
    assert sorted(store.keys()) == ["k1", "k2"]
    with sqlite3.connect(store.path) as conn:  # readers never block the profiler
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_mirrors_rows_into_store_and_backfills(tmp_path):
    cache = ProfileCache(tmp_path / "profiles")
    cache.put("a" * 64, {"row": row(), "measurement": {"x": 1}})
    cache.put("b" * 64, {"io_bytes": {"input_bytes": 1, "output_bytes": 2}})  # not a row
    assert cache.store.keys() == ["a" * 64]
    assert cache.get("a" * 64)["measurement"] == {"x": 1}  # the JSON API is unchanged
    # an entry written before the store existed is copied by sync_store
    cache.store.delete(["a" * 64])
    assert len(cache.store) == 0
    assert cache.sync_store() == 1 and cache.store.keys() == ["a" * 64]


def test_export_then_import_keeps_columns_and_marks_imported(tmp_path):
    store = ProfileStore(tmp_path / "rows.sqlite")
    store.put_rows([("k1", row()), ("k2", row(hardware="arm-cortex-a76-4c", band=0.4,
                                               source="estimated"))])
    path = tmp_path / "rows.csv"
    assert store.export_csv(path) == 2
    assert list(pd.read_csv(path).columns) == PROFILE_COLUMNS
    other = ProfileStore(tmp_path / "other.sqlite")
    imported = other.import_csv(path)
    assert len(imported) == 2 and set(other.table()[SOURCE]) == {IMPORTED}
    # the same rows again replace, not duplicate; the error band survives
    other.import_csv(path)
    table = other.table()
    assert len(table) == 2
    assert table.set_index("hardware").loc["arm-cortex-a76-4c", ERROR_BAND] == 0.4
    assert set(other.keys()) == {imported_key("det", h, "onnxruntime", 1)
                                 for h in ("x86-zen4-2c", "arm-cortex-a76-4c")}


def _write(tmp_path, text: str):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


HEADER = ",".join(PROFILE_COLUMNS)
GOOD = "det,x86-zen4-2c,onnxruntime,1,10,12,50,measured-local,2025-01-01,0.27,"


@pytest.mark.parametrize("body,match", [
    (f"{HEADER}\n{GOOD}\n" + GOOD.replace(",10,12,", ",ten,12,") + "\n",
     r"bad\.csv: row 2: column latency_ms_p50 must be a positive number"),
    (f"{HEADER}\n" + GOOD.replace("onnxruntime", "tensorrt") + "\n", r"row 1: column runtime"),
    (f"{HEADER}\n" + GOOD.replace(",1,10,", ",0,10,") + "\n", r"row 1: column batch"),
    (f"{HEADER}\n" + GOOD.replace("det,", ",") + "\n", r"row 1: column piece is empty"),
    (f"{HEADER}\n" + GOOD + "wide\n", r"row 1: column error_band"),
    ("piece,hardware\ndet,x\n", r"missing column\(s\) runtime"),
    (f"{HEADER},speed\n{GOOD},1\n", r"unknown column\(s\) speed"),
    ("", r"not a readable CSV"),
])
def test_bad_csv_is_one_line_naming_file_row_column(tmp_path, body, match):
    path = _write(tmp_path, body)
    with pytest.raises(ProfileTableError, match=match) as info:
        read_profile_csv(path)
    assert "\n" not in str(info.value) and "bad.csv" in str(info.value)
    store = ProfileStore(tmp_path / "rows.sqlite")
    with pytest.raises(ProfileTableError):
        store.import_csv(path)
    assert len(store) == 0  # nothing half-imported


def test_missing_file(tmp_path):
    with pytest.raises(ProfileTableError, match="no such file"):
        read_profile_csv(tmp_path / "nope.csv")


def test_cli_list_export_import(tmp_path):
    runner = CliRunner()
    ProfileCache().put("c" * 64, {"row": row(piece="classifier")})
    listed = runner.invoke(profiles_app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"classifier"' in listed.stdout
    table = runner.invoke(profiles_app, ["list", "--piece", "classifier"])
    assert table.exit_code == 0 and "classifier" in table.stdout and "1 profile rows" in table.stdout
    out = tmp_path / "export.csv"
    exported = runner.invoke(profiles_app, ["export", str(out)])
    assert exported.exit_code == 0 and list(pd.read_csv(out).columns) == PROFILE_COLUMNS
    edited = pd.read_csv(out).assign(hardware="arm-cortex-a76-4c", piece="classifier")
    edited.to_csv(out, index=False)
    imported = runner.invoke(profiles_app, ["import", str(out)])
    assert imported.exit_code == 0, imported.output
    rows = ProfileStore().table(source=IMPORTED)
    assert list(rows["hardware"]) == ["arm-cortex-a76-4c"]


def test_cli_bad_csv_exit_2_one_line(tmp_path):
    path = _write(tmp_path, f"{HEADER}\n" + GOOD.replace(",12,", ",-3,") + "\n")
    result = CliRunner().invoke(profiles_app, ["import", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.csv: row 1: column latency_ms_p95" in lines[0]


def test_list_shows_which_model_a_row_measured(tmp_path):
    """Two models with the same piece name never mix: the store keeps each row's model hash."""
    ProfileCache().put("a" * 64, {"row": row(piece="det"), "model": "1" * 64})
    ProfileCache().put("b" * 64, {"row": row(piece="det", p50=20.0), "model": "2" * 64})
    listing = ProfileStore().listing(piece="det")
    assert sorted(listing["model"]) == ["1" * 12, "2" * 12]
    shown = CliRunner().invoke(profiles_app, ["list"])
    assert shown.exit_code == 0 and "111111111111" in shown.stdout and "222222222222" in shown.stdout


def test_imported_rows_reach_the_profiler_and_beat_estimates_not_measurements(tmp_path):
    """The issue's Pi 5 row: an imported 30 ms row replaces the estimate a plan would use; a row
    measured here still wins over an imported one for its own hardware."""
    from pathlib import Path

    from profiles.hardware import local_hardware
    from profiles.measure import MeasureConfig
    from profiles.profiler import PieceSource, profile_pieces
    from profiles.providers import default_row_providers

    model = Path(__file__).parent / "data" / "real" / "chain-embed6.onnx"
    source = PieceSource(piece="embed", onnx_path=model, input_shapes={"input": [6, 3, 32, 32]})
    local = local_hardware().name
    pi = "arm-cortex-a76-4c"
    csv = tmp_path / "mine.csv"
    pd.DataFrame([row(piece="embed", hardware=pi, p50=30.0, source="imported"),
                  row(piece="embed", hardware=local, p50=99999.0, source="imported")]).to_csv(csv, index=False)
    runner = CliRunner()
    assert runner.invoke(profiles_app, ["import", str(csv)]).exit_code == 0
    fast = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5)
    report = profile_pieces([source], [pi], runtimes=("onnxruntime",), config=fast,
                            row_providers=default_row_providers())
    ort = report.table[report.table["runtime"] == "onnxruntime"].set_index("hardware")
    assert ort.loc[pi, "source"] == "imported" and ort.loc[pi, "latency_ms_p50"] == 30.0
    assert ort.loc[local, "source"] == "measured-local"  # measured > imported
    assert len(report.table[(report.table["hardware"] == pi)
                            & (report.table["runtime"] == "onnxruntime")]) == 1


def test_a_store_from_before_served_rows_gains_the_column_and_keeps_its_rows(tmp_path):
    """A version-2 store (no `served_load`) opens as it is: its rows read back with an empty
    load, and a measured-served row with its load goes in beside them."""
    from profiles.store import MEASURED_SERVED, SERVED_LOAD, served_key

    path = tmp_path / "old.sqlite"
    columns = ", ".join(f"{c} TEXT" for c in PROFILE_COLUMNS)
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE rows (key TEXT PRIMARY KEY, {columns}, updated_at TEXT NOT NULL, "
                     "model TEXT NOT NULL DEFAULT '', others_cpu_share REAL)")
        old = row()
        conn.execute(f"INSERT INTO rows VALUES (?, {', '.join('?' * len(PROFILE_COLUMNS))}, ?, ?, ?)",
                     ("k1", *[None if isinstance(old[c], float) and math.isnan(old[c]) else old[c]
                              for c in PROFILE_COLUMNS], "2025-01-01", "a" * 12, 0.01))
        conn.execute("PRAGMA user_version=2")
    store = ProfileStore(path)
    listing = store.listing()
    assert list(listing["piece"]) == ["det"] and list(listing[SERVED_LOAD]) == [""]
    served = {**row(p50=12.5, source=MEASURED_SERVED), "model": "b" * 64, SERVED_LOAD: "verify: 40 req/s"}
    store.put_row(served_key("det", "x86-zen4-2c", "onnxruntime", 1, "b" * 64), served)
    listing = store.listing(source=MEASURED_SERVED)
    assert list(listing[SERVED_LOAD]) == ["verify: 40 req/s"] and list(listing["model"]) == ["b" * 12]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
