"""Measured profile rows on disk, keyed by content: a second run measures nothing.

One JSON file per row under `cache_root()/profiles/`, named by the key. The key is the sha256
of everything a measurement depends on (`profile_key`), so an edited model, other input shapes,
another TVM or ONNX Runtime version, or another `MeasureConfig` is simply a miss — nothing is
ever invalidated by hand. Writes are atomic (temp file + rename): a killed run leaves whole rows,
and the next run resumes from them. A file that cannot be read is a miss, with a warning.

The JSON files hold everything about a measurement (its samples' statistics, the TVM-vs-ORT
difference, a cached import failure, io bytes, kernel statistics). Each entry that carries a
ProfileTable row (`{"row": ..., ...}`) is also written, under the same key, to the SQLite profile
store (`profiles/store.py`, `rows.sqlite` in the same directory), which is what
`placement profiles list | export | import` read and write.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from profiles.measure import MeasureConfig
from profiles.paths import atomic_write_text, cache_root

logger = logging.getLogger(__name__)

# Bump when what is measured changes meaning (preparation steps, memory method, statistics).
CACHE_FORMAT = 1
# MeasureConfig fields that change how long we wait, not what is measured.
_NOT_KEYED = {"timeout_s", "contended_retries"}


def runtime_versions() -> dict[str, str]:
    """Versions of the packages a measurement depends on (package metadata; nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("apache-tvm", "onnxruntime", "onnxslim", "onnx"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return versions


def profile_key(
    model_digest: str,
    input_shapes: Mapping[str, list[int]],
    hardware: str,
    runtime: str,
    batch: int,
    tvm_version: str,
    config: MeasureConfig,
    extra: Mapping[str, str] | None = None,
) -> str:
    """sha256 over model digest, sorted input shapes, hardware class, runtime, batch, TVM
    version, the keyed `MeasureConfig` fields and `extra` (other package versions)."""
    fields = {
        "format": CACHE_FORMAT,
        "model": model_digest,
        "input_shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())},
        "hardware": hardware,
        "runtime": runtime,
        "batch": int(batch),
        "tvm_version": tvm_version,
        "config": config.model_dump(exclude=_NOT_KEYED),
        "extra": dict(sorted((extra or {}).items())),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


class ProfileCache:
    """`get(key)` / `put(key, row)` over one JSON file per key."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else cache_root() / "profiles"
        self._store = None

    @property
    def store(self):
        """The SQLite store of ProfileTable rows that lives in this cache's directory."""
        if self._store is None:
            from profiles.store import STORE_FILE, ProfileStore

            self._store = ProfileStore(self.directory / STORE_FILE)
        return self._store

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("profile cache: ignoring unreadable %s (%s)", path, exc)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "row" not in entry:
            logger.warning("profile cache: ignoring %s (not a cache entry for its key)", path)
            return None
        return entry["row"]

    def put(self, key: str, row: Mapping) -> Path:
        path = self.path(key)
        atomic_write_text(path, json.dumps({"key": key, "row": dict(row)}, indent=1, sort_keys=True,
                                           default=str) + "\n")
        table_row = _store_row(row)
        if table_row is not None:
            try:
                self.store.put_row(key, table_row)
            except Exception as exc:  # noqa: BLE001 - the JSON entry is the source of truth
                logger.warning("profile store: could not record %s (%s)", key[:12], exc)
        return path

    def sync_store(self) -> int:
        """Copy every row entry of the JSON files into the store (entries written before the store
        existed); returns how many rows it holds afterwards. Unreadable files are skipped."""
        keyed = []
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.json")):
                entry = self.get(path.stem)
                table_row = _store_row(entry)
                if table_row is not None:
                    keyed.append((path.stem, table_row))
        known = set(self.store.keys())
        self.store.put_rows((k, r) for k, r in keyed if k not in known)
        return len(self.store)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json")) if self.directory.is_dir() else 0


def _store_row(entry) -> dict | None:
    """The store's row of a cache entry: its ProfileTable row, the model's hash and how busy the
    machine was (`others_cpu_share` of its measurement); None for entries that hold no row."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("row"), Mapping):
        return None
    measurement = entry.get("measurement") if isinstance(entry.get("measurement"), Mapping) else {}
    return {**entry["row"], "model": entry.get("model") or "",
            "others_cpu_share": measurement.get("others_cpu_share")}
