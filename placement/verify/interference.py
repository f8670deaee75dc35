"""Did the workers slow each other down? Each call's compute split by whether another worker
process was computing at the same time, so a run can tell a piece that is slow from one that is
slowed by its neighbours on this machine's shared caches, memory bus and cores.

Why: on the fidelity bench's pool case (two replicas of a 10 ms piece on a 2-core machine), a
call ran 8-30 % slower at the median and 25-60 % slower at p95 while the other replica computed
all along than while it computed alone, and consecutive calls' times were correlated (lag-1
0.8): the replicas are slow exactly when the queue is long, which no queueing model of
independent service times covers. A pool's replicas on their own instances do not share a cache;
here they do, and the report says by how much (docs/verify.md)."""

from __future__ import annotations

import numpy as np

# a call counts as alone when others computed under this share of it, overlapped above OVERLAPPED
ALONE, OVERLAPPED = 0.1, 0.9
MIN_CALLS = 10  # in each class, for a figure


def _union(intervals: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merged intervals (starts, ends) and the covered length before each merged interval."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return np.zeros(0), np.zeros(0), np.zeros(1)
    starts, ends = np.array([m[0] for m in merged]), np.array([m[1] for m in merged])
    return starts, ends, np.concatenate([[0.0], np.cumsum(ends - starts)])


def _covered(union, t: float) -> float:
    """Length of the union before time t."""
    starts, ends, before = union
    i = int(np.searchsorted(starts, t, side="right"))  # intervals starting at or before t
    if i == 0:
        return 0.0
    return float(before[i - 1] + min(t, ends[i - 1]) - starts[i - 1])


def overlap_shares(calls: list[tuple[str, str, float, float]]) -> list[float]:
    """Per call (worker, stage, start, end): the share of it during which any other worker
    process was computing."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for worker, _stage, start, end in calls:
        by_worker.setdefault(worker, []).append((start, end))
    others = {w: _union([iv for v, ivs in by_worker.items() if v != w for iv in ivs]) for w in by_worker}
    shares = []
    for worker, _stage, start, end in calls:
        union = others[worker]
        length = end - start
        shares.append((_covered(union, end) - _covered(union, start)) / length if length > 0 else 0.0)
    return shares


def by_stage(calls: list[tuple[str, str, float, float]]) -> dict[str, dict]:
    """Per stage: compute p50 / p95 (ms) of its calls alone and overlapped, and how many of each;
    None where a class has fewer than `MIN_CALLS` calls."""
    shares = overlap_shares(calls)
    out: dict[str, dict] = {}
    for (_worker, stage, start, end), share in zip(calls, shares):
        row = out.setdefault(stage, {"alone": [], "overlapped": []})
        if share < ALONE:
            row["alone"].append((end - start) * 1000.0)
        elif share > OVERLAPPED:
            row["overlapped"].append((end - start) * 1000.0)
    result = {}
    for stage, row in out.items():
        figures = {}
        for kind in ("alone", "overlapped"):
            values = row[kind]
            enough = len(values) >= MIN_CALLS
            figures[f"compute_{kind}_calls"] = len(values)
            figures[f"compute_{kind}_ms_p50"] = float(np.percentile(values, 50)) if enough else None
            figures[f"compute_{kind}_ms_p95"] = float(np.percentile(values, 95)) if enough else None
        result[stage] = figures
    return result
