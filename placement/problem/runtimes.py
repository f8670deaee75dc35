"""Which profiled runtimes the planner considers for a piece on a hardware class.

Queueing and utilisation follow a runtime's p50, latency its p95, fit its memory: a runtime
with a higher p95 but a much lower p50 can make a cheaper plan (fewer replicas, a device that
keeps up), so the planner keeps every runtime no other one beats on all three numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from profiles import table as pt

_KEY = [pt.PIECE, pt.HARDWARE, pt.BATCH]


def planning_latencies(profiles: pd.DataFrame, estimated_latency: str) -> pd.DataFrame:
    """The ProfileTable the planner uses: with "upper-band", every estimated row is taken at the
    top of its error band, so the plan holds even where the estimate is as wrong as its
    calibration residuals allow. The band is multiplicative (the latency lies between
    estimate ÷ (1 + band) and estimate × (1 + band); docs/profiles.md section 4): its top is
    estimate × (1 + band)."""
    if estimated_latency == "nominal":
        return profiles
    out = profiles.copy()
    banded = (out[pt.SOURCE] == "estimated") & out[pt.ERROR_BAND].notna()
    factor = 1.0 + out.loc[banded, pt.ERROR_BAND].astype(float)
    for column in (pt.LATENCY_MS_P50, pt.LATENCY_MS_P95):
        out.loc[banded, column] = out.loc[banded, column].astype(float) * factor
    return out


def _numbers(row: dict) -> tuple[float, float, float]:
    return float(row[pt.LATENCY_MS_P50]), float(row[pt.LATENCY_MS_P95]), float(row[pt.MEMORY_MB])


def runtime_front(rows: Sequence[dict], replicas: Callable[[dict], int] | None = None) -> list[dict]:
    """The rows (runtimes of one piece, hardware and batch) no other row beats on p50, p95 and
    memory; identical rows keep the first. With `replicas` (the replica count a row's p50 needs
    at the pool's load), a row is only beaten by one that needs as many replicas: a cloud
    option's replica counts start at that number, and a row needing more offers counts the
    other cannot (so dropping it could drop an optimum)."""
    kept = []
    for i, row in enumerate(rows):
        mine = _numbers(row)
        beaten = False
        for j, other in enumerate(rows):
            if j == i:
                continue
            theirs = _numbers(other)
            if not all(a <= b for a, b in zip(theirs, mine)):
                continue
            if theirs == mine and j > i:
                continue  # identical numbers: the first one stays
            if replicas is not None and replicas(other) != replicas(row):
                continue
            beaten = True
            break
        if not beaten:
            kept.append(row)
    return kept


def best_runtime_rows(profiles: pd.DataFrame) -> pd.DataFrame:
    """The runtimes worth planning with per (piece, hardware, batch): every row not dominated on
    (p50, p95, memory), fastest p95 first (ties: by runtime name)."""
    rows = profiles.sort_values([*_KEY, pt.LATENCY_MS_P95, pt.RUNTIME]).to_dict("records")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r[pt.PIECE], r[pt.HARDWARE], int(r[pt.BATCH])), []).append(r)
    kept = [r for group in groups.values() for r in runtime_front(group)]
    return pd.DataFrame(kept, columns=profiles.columns)


@dataclass(frozen=True)
class RuntimeIndex:
    """Profile rows looked up by (piece, hardware): per batch, every runtime, fastest p95 first
    (ties by runtime name), and the batch-1 p95 of each runtime for reports."""

    by_batch: dict  # (piece, hardware) -> {batch: tuple[row, ...]}
    alternatives: dict  # (piece, hardware) -> {runtime: p95 ms at batch 1}

    @classmethod
    def of(cls, profiles: pd.DataFrame) -> RuntimeIndex:
        rows = profiles.sort_values([*_KEY, pt.LATENCY_MS_P95, pt.RUNTIME]).to_dict("records")
        by_batch: dict[tuple[str, str], dict[int, list[dict]]] = {}
        for r in rows:
            by_batch.setdefault((r[pt.PIECE], r[pt.HARDWARE]), {}).setdefault(int(r[pt.BATCH]), []).append(r)
        alternatives: dict[tuple[str, str], dict[str, float]] = {}
        for r in profiles[profiles[pt.BATCH] == 1].to_dict("records"):
            alternatives.setdefault((r[pt.PIECE], r[pt.HARDWARE]), {})[r[pt.RUNTIME]] = float(r[pt.LATENCY_MS_P95])
        frozen = {k: {b: tuple(rs) for b, rs in sorted(d.items())} for k, d in by_batch.items()}
        return cls(frozen, alternatives)

    def batches(self, piece: str, hardware: str) -> dict:
        return self.by_batch.get((piece, hardware), {})

    def pieces(self) -> set[str]:
        return {p for p, _ in self.by_batch}

    def hardware_of(self, piece: str) -> set[str]:
        return {h for p, h in self.by_batch if p == piece}
