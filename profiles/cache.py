"""Measured profile rows on disk, keyed by content: a second run measures nothing.

One JSON file per row under `cache_root()/profiles/`, named by the key. The key is the sha256
of everything a measurement depends on (`profile_key`), so an edited model, other input shapes,
another TVM or ONNX Runtime version, or another `MeasureConfig` is simply a miss — nothing is
ever invalidated by hand. Writes are atomic (temp file + rename): a killed run leaves whole rows,
and the next run resumes from them. A file that cannot be read is a miss, with a warning.
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
_NOT_KEYED = {"timeout_s"}


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
        return path

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json")) if self.directory.is_dir() else 0
