"""The profile store: every ProfileTable row this user has measured or imported, in SQLite.

One file, `cache_root()/profiles/rows.sqlite` (next to the JSON measurement cache), in WAL mode
so readers never block the profiler. Each row is stored under its cache key: a measured row
under the `profile_key` of its measurement (so the store and the JSON cache agree on identity),
an imported row under a key made of (piece, hardware, runtime, batch), so importing the same CSV
twice replaces rather than duplicates. Every write is one transaction: a killed run leaves whole
rows or none.

Export and import use exactly the ProfileTable column names (`profiles/table.py`); an imported
row keeps `source = "imported"` whatever its CSV said, so a plan never mistakes a number someone
pasted in for one measured here. A bad CSV raises `ProfileTableError` naming the file, the row and
the column. Calibrations (`profiles/calibration.py`) are kept here too, one JSON blob per name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from profiles.paths import cache_root
from profiles.table import (
    BATCH,
    ERROR_BAND,
    HARDWARE,
    MEASURED_SERVED,
    PIECE,
    PROFILE_COLUMNS,
    RUNTIME,
    SOURCE,
    ProfileTableError,
    empty_profile_table,
    validate_profile_table,
)

IMPORTED = "imported"
STORE_FILE = "rows.sqlite"
SCHEMA_VERSION = 3
# The store's own columns beside the ProfileTable's: which model a row measured (the sha256 of its
# ONNX file, first 12 hex digits; empty for an imported row not bound to a model), how busy
# the machine was while it was measured (`profiles.contention`), and for a row measured while
# serving a plan (`placement verify --store-profiles`) the load it served under, in words.
MODEL = "model"
OTHERS_CPU_SHARE = "others_cpu_share"
SERVED_LOAD = "served_load"
STORE_COLUMNS = [MODEL, OTHERS_CPU_SHARE, SERVED_LOAD]
SHORT_HASH = 12
_REAL = {"latency_ms_p50", "latency_ms_p95", "memory_mb", "error_band"}


def default_store_path() -> Path:
    return cache_root() / "profiles" / STORE_FILE


def _source_key(source: str, piece: str, hardware: str, runtime: str, batch: int, model: str) -> str:
    fields = [source, str(piece), str(hardware), str(runtime), int(batch)]
    if model:
        fields.append(str(model)[:SHORT_HASH])
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()


def imported_key(piece: str, hardware: str, runtime: str, batch: int, model: str = "") -> str:
    """The store key of an imported row: one row per (piece, hardware, runtime, batch) and model
    (a row not bound to a model keeps the key it always had)."""
    return _source_key(IMPORTED, piece, hardware, runtime, batch, model)


def served_key(piece: str, hardware: str, runtime: str, batch: int, model: str) -> str:
    """The store key of a row measured while serving: one per (piece, hardware, runtime, batch,
    model), so the latest verify run replaces an earlier one."""
    return _source_key(MEASURED_SERVED, piece, hardware, runtime, batch, model)


def _column_sql(column: str) -> str:
    if column == BATCH:
        return f"{column} INTEGER NOT NULL"
    if column in _REAL:
        return f"{column} REAL" + ("" if column == ERROR_BAND else " NOT NULL")
    return f"{column} TEXT" + (" NOT NULL" if column in (PIECE, HARDWARE, RUNTIME, SOURCE) else "")


class ProfileStore:
    """ProfileTable rows (and calibrations) in one SQLite file; safe across processes."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self._ready = False

    # --- connection -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            if not self._ready:
                self._init(conn)
                self._ready = True
            yield conn
        finally:
            conn.close()

    def _init(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        columns = ", ".join(_column_sql(c) for c in PROFILE_COLUMNS)
        with conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, {columns}, "
                         "updated_at TEXT NOT NULL)")
            have = {r[1] for r in conn.execute("PRAGMA table_info(rows)")}
            if MODEL not in have:  # a store from before version 2
                conn.execute(f"ALTER TABLE rows ADD COLUMN {MODEL} TEXT NOT NULL DEFAULT ''")
            if OTHERS_CPU_SHARE not in have:
                conn.execute(f"ALTER TABLE rows ADD COLUMN {OTHERS_CPU_SHARE} REAL")
            if SERVED_LOAD not in have:  # a store from before version 3
                conn.execute(f"ALTER TABLE rows ADD COLUMN {SERVED_LOAD} TEXT NOT NULL DEFAULT ''")
            conn.execute("CREATE INDEX IF NOT EXISTS rows_identity ON rows "
                         f"({PIECE}, {HARDWARE}, {RUNTIME}, {BATCH})")
            conn.execute("CREATE TABLE IF NOT EXISTS calibrations (name TEXT PRIMARY KEY, "
                         "body TEXT NOT NULL, updated_at TEXT NOT NULL)")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- rows -----------------------------------------------------------------------------

    def put_rows(self, keyed_rows: Iterable[tuple[str, Mapping]]) -> int:
        """Insert or replace rows, each under its key, in one transaction; returns the count.
        A row may also carry `model` (the model's sha256, kept short), `others_cpu_share` and
        `served_load`."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        values = [(key, *(_sql_value(row.get(c)) for c in PROFILE_COLUMNS),
                   str(row.get(MODEL) or "")[:SHORT_HASH], _sql_value(row.get(OTHERS_CPU_SHARE)),
                   str(row.get(SERVED_LOAD) or ""), now)
                  for key, row in keyed_rows]
        if not values:
            return 0
        columns = ", ".join([*PROFILE_COLUMNS, *STORE_COLUMNS])
        placeholders = ", ".join("?" * (len(PROFILE_COLUMNS) + len(STORE_COLUMNS) + 2))
        with self._connect() as conn, conn:
            conn.executemany(f"INSERT OR REPLACE INTO rows (key, {columns}, updated_at) "
                             f"VALUES ({placeholders})", values)
        return len(values)

    def put_row(self, key: str, row: Mapping) -> None:
        self.put_rows([(key, row)])

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        with self._connect() as conn, conn:
            return sum(conn.execute("DELETE FROM rows WHERE key = ?", (k,)).rowcount for k in keys)

    def table(self, *, piece: str | None = None, hardware: str | None = None,
              source: str | None = None, runtime: str | None = None) -> pd.DataFrame:
        """The stored rows as a ProfileTable (filters are exact matches), sorted for reading."""
        return self.listing(piece=piece, hardware=hardware, source=source,
                            runtime=runtime)[PROFILE_COLUMNS]

    def listing(self, *, piece: str | None = None, hardware: str | None = None,
                source: str | None = None, runtime: str | None = None,
                model: str | None = None) -> pd.DataFrame:
        """The stored rows with the store's own columns too (`model`, `others_cpu_share`,
        `served_load`);
        `model` matches a prefix of the model's hash."""
        where, args = [], []
        if model is not None:
            where.append(f"{MODEL} LIKE ?")
            args.append(f"{model[:SHORT_HASH]}%")
        for column, value in ((PIECE, piece), (HARDWARE, hardware), (SOURCE, source),
                              (RUNTIME, runtime)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        columns = [*PROFILE_COLUMNS, *STORE_COLUMNS]
        sql = f"SELECT {', '.join(columns)} FROM rows"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {PIECE}, {MODEL}, {HARDWARE}, {RUNTIME}, {BATCH}, {SOURCE}"
        with self._connect() as conn:
            records = conn.execute(sql, args).fetchall()
        typed = empty_profile_table()
        typed[MODEL] = pd.Series(dtype="object")
        typed[OTHERS_CPU_SHARE] = pd.Series(dtype="float64")
        typed[SERVED_LOAD] = pd.Series(dtype="object")
        if not records:
            return typed
        df = pd.DataFrame.from_records(records, columns=columns)
        return df.astype({c: typed[c].dtype for c in columns}).reset_index(drop=True)

    def keys(self) -> list[str]:
        with self._connect() as conn:
            return [k for (k,) in conn.execute("SELECT key FROM rows ORDER BY key")]

    def __len__(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    # --- CSV ------------------------------------------------------------------------------

    def export_csv(self, path: Path, **filters) -> int:
        """Write the stored rows (filtered like `table`) as a ProfileTable CSV; returns the count."""
        from profiles.paths import atomic_write_text

        df = self.table(**filters)
        atomic_write_text(Path(path), df.to_csv(index=False))
        return len(df)

    def import_csv(self, path: Path, models: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Read a ProfileTable CSV, validate it, store its rows with source "imported".

        `models` (piece -> model sha256) binds each row to the model its piece is in (rows of
        pieces it does not name stay unbound: they apply to any model with that piece name).
        Returns the rows stored. `ProfileTableError` (one line: file, row, column) when the file is
        missing, unreadable, or a row breaks the ProfileTable contract; nothing is stored then."""
        df = read_profile_csv(path)
        df[SOURCE] = IMPORTED
        models = dict(models or {})
        self.put_rows((imported_key(r[PIECE], r[HARDWARE], r[RUNTIME], r[BATCH],
                                    models.get(r[PIECE], "")),
                       {**r, MODEL: models.get(r[PIECE], "")})
                      for r in df.to_dict("records"))
        return df

    # --- calibrations ---------------------------------------------------------------------

    def put_calibration(self, name: str, body: Mapping) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as conn, conn:
            conn.execute("INSERT OR REPLACE INTO calibrations (name, body, updated_at) "
                         "VALUES (?, ?, ?)", (name, json.dumps(dict(body), sort_keys=True), now))

    def get_calibration(self, name: str) -> dict | None:
        with self._connect() as conn:
            found = conn.execute("SELECT body FROM calibrations WHERE name = ?", (name,)).fetchone()
        if found is None:
            return None
        try:
            return json.loads(found[0])
        except ValueError:
            return None


def read_profile_csv(path: Path) -> pd.DataFrame:
    """A ProfileTable from a CSV, validated: `ProfileTableError` names the file/row/column."""
    path = Path(path)
    if not path.is_file():
        raise ProfileTableError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype={PIECE: str, HARDWARE: str, RUNTIME: str, SOURCE: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ProfileTableError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    unknown = [c for c in raw.columns if c not in PROFILE_COLUMNS]
    if unknown:
        raise ProfileTableError(f"{path}: unknown column(s) {', '.join(map(str, unknown))}; "
                                f"expected {', '.join(PROFILE_COLUMNS)}")
    for column in (PIECE, HARDWARE):
        if column in raw.columns:
            blank = raw[column].isna() | (raw[column].astype(str).str.strip() == "")
            if blank.any():
                row = int(blank.to_numpy().argmax())
                raise ProfileTableError(f"{path}: row {row + 1}: column {column} is empty")
    df = validate_profile_table(raw, origin=str(path))
    band = pd.to_numeric(df[ERROR_BAND], errors="coerce")
    bad_band = df[ERROR_BAND].notna() & (band.isna() | (band < 0))
    if bad_band.any():
        row = int(bad_band.to_numpy().argmax())
        raise ProfileTableError(f"{path}: row {row + 1}: column {ERROR_BAND} must be a number "
                                f">= 0 or empty, got {df[ERROR_BAND].iloc[row]!r}")
    df[ERROR_BAND] = band
    for column in ("measured_at", "tvm_version"):
        df[column] = df[column].where(df[column].notna(), "").astype(str)
    return df


def _sql_value(value):
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value
