import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its caches under a private temp dir, never the user's."""
    root = tmp_path_factory.getbasetemp() / "placement-cache"
    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(root))


@pytest.fixture(autouse=True)
def _contention_blind(request, monkeypatch):
    """Tests of caching and tables must not depend on how busy the test machine is: contention
    detection (profiles.contention) is off except in tests marked `contention`, which inject
    their own CPU hog."""
    if request.node.get_closest_marker("contention") is None:
        monkeypatch.setattr("profiles.contention.CONTENDED_SHARE", float("inf"))
