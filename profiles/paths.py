"""Where the project keeps what it computed: one root, overridable for tests and CI."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

CACHE_ENV = "PLACEMENT_CACHE_DIR"


def cache_root() -> Path:
    """The user cache dir (platformdirs), or $PLACEMENT_CACHE_DIR when set."""
    root = Path(os.environ.get(CACHE_ENV) or user_cache_dir("placement-optimizer"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a killed run never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
