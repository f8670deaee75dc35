"""The tuning database on disk, read and repaired without TVM, and each model's run plan.

One MetaSchedule JSON database per hardware class and TVM version under
`cache_root()/tuning/<hardware>/<tvm-version>/` (`database_workload.json`,
`database_tuning_record.json`). Every model tuned for that class adds to it, and a later model
whose kernels (fused TIR functions) are structurally the same reuses their records. The JSON
database appends one line per measured trial as it goes, so a crash or `kill -9` of the tuning
process loses no finished trial; a torn last line is dropped before the next run
(`TuningDatabase.repair`). A file lock keeps two tuning runs off one database. Next to it:
`calibration.json` (seconds per trial measured by earlier runs), `task_state.json` (workloads
whose search space ran out) and `runs/<piece>-<hash>/plan.json` (search time a model has spent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from profiles.onnx_prep import model_digest
from profiles.paths import atomic_write_bytes, atomic_write_text, cache_root
from profiles.rows import now_utc
from profiles.tvm_adapter import tvm_version

logger = logging.getLogger(__name__)

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
CALIBRATION_FILE = "calibration.json"
TASK_STATE_FILE = "task_state.json"
LOCK_FILE = "tuning.lock"
PLAN_FILE = "plan.json"           # per model: search time spent so far, trials per task
FAILED_RUN_SECS = 1e9             # MetaSchedule records a failed build/run as 1e10 s


def tuning_dir(hardware: str, version: str | None = None) -> Path:
    """cache_root()/tuning/<hardware>/<tvm-version>/ (not created)."""
    return cache_root() / "tuning" / hardware / (version or tvm_version())


@dataclass(frozen=True)
class WorkloadStats:
    """What the database holds for one workload (task): trials recorded and the best one."""

    records: int
    best_s: float | None   # mean run time of the best successful trial, seconds


class TuningDatabase:
    """The files of one MetaSchedule JSON database, read without TVM.

    `database_workload.json`: one line per workload, `["<structural hash>", "<module>"]`;
    `database_tuning_record.json`: one line per trial, `[workload line number, [trace, run_secs,
    target, args]]`, failed trials with `run_secs` 1e10."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @classmethod
    def for_hardware(cls, hardware: str, version: str | None = None) -> TuningDatabase:
        return cls(tuning_dir(hardware, version))

    @property
    def workload_path(self) -> Path:
        return self.directory / WORKLOAD_FILE

    @property
    def record_path(self) -> Path:
        return self.directory / RECORD_FILE

    def exists(self) -> bool:
        return self.record_path.is_file() and self.record_path.stat().st_size > 0

    def repair(self) -> int:
        """Drop a torn last line (a process killed mid-append); returns the lines dropped.

        TVM's JSON database refuses to load a file with a line it cannot parse."""
        dropped = 0
        for path in (self.workload_path, self.record_path):
            if not path.is_file():
                continue
            data = path.read_bytes()
            if not data:
                continue
            lines = data.split(b"\n")
            keep = []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                    keep.append(line)
                except ValueError:
                    dropped += 1
                    logger.warning("tuning database %s: dropping unreadable line %d", path, i + 1)
            if dropped or not data.endswith(b"\n"):
                atomic_write_bytes(path, b"".join(line + b"\n" for line in keep))
        return dropped

    def _workload_hashes(self) -> list[str]:
        if not self.workload_path.is_file():
            return []
        hashes = []
        with open(self.workload_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        hashes.append(str(json.loads(line)[0]))
                    except (ValueError, IndexError, TypeError):
                        hashes.append("")
        return hashes

    def workload_stats(self) -> dict[str, WorkloadStats]:
        """Per workload structural hash: trials recorded and the best mean run time."""
        hashes = self._workload_hashes()
        counts: dict[str, int] = {}
        best: dict[str, float] = {}
        if not self.record_path.is_file():
            return {}
        with open(self.record_path, encoding="utf-8") as f:
            for line in f:
                try:
                    index, record = json.loads(line)
                    shash = hashes[int(index)]
                except (ValueError, IndexError, TypeError):
                    continue
                counts[shash] = counts.get(shash, 0) + 1
                run_secs = record[1] if isinstance(record, list) and len(record) > 1 else None
                if run_secs:
                    mean = sum(float(x) for x in run_secs) / len(run_secs)
                    if mean < FAILED_RUN_SECS:
                        best[shash] = min(best.get(shash, mean), mean)
        return {h: WorkloadStats(n, best.get(h)) for h, n in counts.items()}

    def record_count(self) -> int:
        if not self.record_path.is_file():
            return 0
        with open(self.record_path, "rb") as f:
            return sum(1 for line in f if line.strip())

    # calibration: wall seconds per trial, measured by earlier runs on this database
    def seconds_per_trial(self) -> float | None:
        try:
            value = json.loads((self.directory / CALIBRATION_FILE).read_text())["seconds_per_trial"]
            return float(value) if value > 0 else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def update_calibration(self, trials: int, seconds: float) -> None:
        """Blend a run's seconds per trial into the stored figure (weighted by trials)."""
        if trials < 4 or seconds <= 0:
            return
        path = self.directory / CALIBRATION_FILE
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        n_old = int(old.get("trials", 0))
        spt_old = float(old.get("seconds_per_trial", 0) or 0)
        spt_new = seconds / trials
        weight_old = min(n_old, 2000)
        spt = (spt_old * weight_old + spt_new * trials) / (weight_old + trials) if spt_old else spt_new
        atomic_write_text(path, json.dumps({"seconds_per_trial": spt, "trials": n_old + trials,
                                            "updated": now_utc()}, indent=1) + "\n")

    def exhausted(self) -> set[str]:
        """Workloads whose search space ran out (asked for more trials than it could give)."""
        try:
            return set(json.loads((self.directory / TASK_STATE_FILE).read_text())["exhausted"])
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    def mark_exhausted(self, shash: str) -> None:
        done = self.exhausted() | {shash}
        atomic_write_text(self.directory / TASK_STATE_FILE,
                          json.dumps({"exhausted": sorted(done)}, indent=1) + "\n")

    def lock(self):
        """An exclusive lock on this database (released when the process dies)."""
        from filelock import FileLock

        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory / LOCK_FILE))


# --- per model: the run plan ------------------------------------------------------------------

def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "piece"


def run_name(piece: str, prepared, input_shapes: Mapping[str, Sequence[int]]) -> str:
    """runs/<piece>-<hash of the prepared model and shapes>: one plan per model and shapes."""
    fields = {"model": model_digest(prepared),
              "shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())}}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"{_safe_name(piece)}-{key}"


def read_plan(run_dir: Path) -> dict:
    try:
        plan = json.loads((run_dir / PLAN_FILE).read_text())
        return plan if isinstance(plan, dict) else {}
    except (OSError, ValueError):
        return {}
