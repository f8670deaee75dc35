"""Is this machine quiet enough to measure on? CPU time other processes used while we sampled.

A latency measured while another process keeps the cores busy comes out several times slower
than on a quiet machine, and its p95/p50 need not show it (every sample is slow alike). So the
measuring child watches the machine itself: the CPU time all processes used during sampling
(`psutil.cpu_times`) minus the CPU time the measuring process used, as a share of what the
machine's cores could do in that wall time. A quiet machine reads a few percent; a busy neighbour
on every core reads 40 % or more. The profiler re-measures a contended row and, when the machine
stays busy, does not store it (see `profiles.profiler`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# Other processes used at least this share of the machine's CPU time while we sampled: contended.
CONTENDED_SHARE = 0.2


@dataclass(frozen=True)
class Contention:
    """What the machine did while a block ran."""

    others_cpu_share: float  # CPU time of other processes / (wall time × cores), 0..1
    load_per_core: float | None  # 1-minute load average / cores, read when the block started
    wall_s: float

    @property
    def contended(self) -> bool:
        return is_contended(self.others_cpu_share)


def is_contended(others_cpu_share: float | None) -> bool:
    """True when other processes used `CONTENDED_SHARE` or more of the machine while measuring."""
    return others_cpu_share is not None and others_cpu_share >= CONTENDED_SHARE


# /proc/stat counts in clock ticks (10 ms): a shorter window reads noise, so a block that ends
# sooner is followed by idle watching (this process idles; the neighbours show) up to this long.
MIN_WATCH_S = 0.3


class CpuWatch:
    """`with CpuWatch() as watch: ...` then `watch.result` (a `Contention`). With
    `with_children`, the child processes this process started and reaped inside the block count
    as its own (`placement verify`'s workers): only the rest of the machine is "others"."""

    def __init__(self, min_s: float = MIN_WATCH_S, with_children: bool = False):
        self.min_s = min_s
        self.with_children = with_children
        self.result: Contention | None = None

    def __enter__(self) -> CpuWatch:
        import psutil

        self._process = psutil.Process()
        self._cores = psutil.cpu_count() or 1
        try:
            self._load = os.getloadavg()[0] / self._cores
        except OSError:  # pragma: no cover - no load average on this platform
            self._load = None
        self._t0 = time.perf_counter()
        self._busy0 = _busy_s(psutil.cpu_times())
        self._mine0 = _process_s(self._process, self.with_children)
        return self

    def __exit__(self, *exc) -> None:
        import psutil

        left = self.min_s - (time.perf_counter() - self._t0)
        if left > 0:
            time.sleep(left)
        wall = max(time.perf_counter() - self._t0, 1e-9)
        busy = _busy_s(psutil.cpu_times()) - self._busy0
        mine = _process_s(self._process, self.with_children) - self._mine0
        share = max(0.0, busy - mine) / (wall * self._cores)
        self.result = Contention(min(share, 1.0), self._load, wall)


def _busy_s(times) -> float:
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    total = sum(getattr(times, f) for f in times._fields if f not in ("guest", "guest_nice"))
    return total - idle


def _process_s(process, with_children: bool = False) -> float:
    t = process.cpu_times()
    children = (getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)) if with_children else 0.0
    return t.user + t.system + children


def describe(share: float, attempts: int) -> str:
    """One line for a person about a measurement taken on a busy machine."""
    tries = "once" if attempts == 1 else f"{attempts} times"
    return (f"other processes used {share:.0%} of this machine's CPU time while it was measured "
            f"({tries}); its latency may be several times what a quiet machine measures")
