"""One piece measured on a quiet machine, then under a CPU hog: what the profiler does with it.

    python bench/contention.py        # run it on a quiet machine: the first row is the reference

The hog is one spinning process per core (tests/test_contention.py's `Hog`). A row measured
under it comes out several times slower; the profiler notices (CPU time of other processes
while sampling, `profiles.contention`), measures it again (`contended_retries`), and when the
machine stays busy stores the row with its noise figure and says so, rather than keeping a
silently slow `measured-local` row. Prints one line per case: p50, p95, the others' CPU share,
attempts, what was stored, and the problem line shown to the user.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def measure(hog: bool) -> None:
    from test_contention import Hog, _mlp

    from profiles.cache import ProfileCache
    from profiles.measure import MeasureConfig
    from profiles.paths import CACHE_ENV
    from profiles.profiler import profile_pieces

    tmp = Path(tempfile.mkdtemp(prefix="contention-"))
    os.environ[CACHE_ENV] = str(tmp / "cache")  # a private cache: nothing reused from earlier runs
    source, cache = _mlp(tmp), ProfileCache(tmp / "profiles")
    config = MeasureConfig(warmup_runs=3, repeat=50, min_repeat_ms=2.0, max_measure_s=2.0, timeout_s=120,
                           contended_retries=2)
    if hog:
        with Hog():
            report = profile_pieces([source], [], runtimes=("onnxruntime",), config=config, cache=cache)
    else:
        report = profile_pieces([source], [], runtimes=("onnxruntime",), config=config, cache=cache)
    m = report.measurements[("mlp", "onnxruntime")]
    [stored] = cache.store.listing().to_dict("records")
    print(f"| {'under a CPU hog' if hog else 'quiet'} | {m.latency_ms_p50:.3f} | {m.latency_ms_p95:.3f} | "
          f"{m.others_cpu_share:.0%} | {m.attempts} | {m.threads} | {m.spinning} | "
          f"{stored['source']}, noise {stored['others_cpu_share']:.0%} |")
    for problem in report.problems:
        print(f"    said: {problem}")


def main() -> int:
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the quiet row")
    print("| case | p50 ms | p95 ms | others' CPU share | attempts | threads | spinning | stored |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    measure(hog=False)
    measure(hog=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
