"""Budgets for tuning: durations as people write them, and how a budget becomes trials per task.

A budget is the search time for one model on one hardware class, in total over all runs. What
is left buys `T = left / seconds-per-trial / tasks` trials per task; every task gets its share
(no piling onto the first tasks). The time left is shared among the tasks still to tune in
proportion to their missing trials, so slow trials thin every task instead of starving the last
ones; fast trials raise `T` in top-up passes. These are pure functions: the search
(`profiles.tuning_search`) calls them with the clock's readings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

DEFAULT_SECONDS_PER_TRIAL = 1.5   # until a run on this database has measured it
MAX_TRIALS_PER_TASK = 2000
TRIALS_PER_ITER = 32              # trials measured per search iteration (cost model refits)
MAX_PASSES = 4                    # top-up passes when trials are faster than calibrated
STOP_GRACE_S = 300.0              # the parent kills a child this long past its budget

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s|ms)?", re.IGNORECASE)


def parse_budget(text: str | float | int) -> float:
    """"90s", "20m", "1h", "1h30m", "1.5h" or a number of seconds -> seconds (> 0)."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        if not s:
            raise ValueError("empty budget; expected e.g. 90s, 20m or 1h")
        while pos < len(s):
            match = _DURATION.match(s, pos)
            if not match or match.end() == pos:
                raise ValueError(f"budget {text!r}: expected e.g. 90s, 20m, 1h or 1h30m")
            value, unit = float(match.group(1)), (match.group(2) or "s")
            seconds += value * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
            pos = match.end()
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"budget {text!r}: must be a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def initial_trials_per_task(time_left_s: float, seconds_per_trial: float, n_tasks: int, *,
                            fixed: int | None = None, previous: int | None = None) -> int:
    """T for a run: `fixed` when given, else the plan of an interrupted run (`previous`), else
    what the time left buys per task (1 to `MAX_TRIALS_PER_TASK`)."""
    if fixed:
        return int(fixed)
    if previous:
        return int(previous)
    per_task = int(max(0.0, time_left_s) / seconds_per_trial / max(1, n_tasks))
    return max(1, min(MAX_TRIALS_PER_TASK, per_task))


def missing_trials(per_task: int, records: Sequence[int], exhausted: Sequence[bool]) -> list[int]:
    """Trials each task still needs to hold `per_task` records (none for an exhausted task)."""
    return [0 if done else max(0, per_task - r) for r, done in zip(records, exhausted)]


def observed_seconds_per_trial(search_s: float, trials: int, prior: float, min_trials: int) -> float:
    """This run's seconds per trial once it has `min_trials`, else the calibrated `prior`."""
    return search_s / trials if trials >= min_trials else prior


def top_up_trials(time_left_s: float, seconds_per_trial: float, active_tasks: int) -> int:
    """Trials per task the time left buys for a top-up pass over `active_tasks` tasks."""
    return int(max(0.0, time_left_s) / max(seconds_per_trial, 1e-3) / max(1, active_tasks))


def task_allotment(time_left_s: float, missing: int, demand: int,
                   seconds_per_trial: float) -> tuple[float, int]:
    """(seconds, trials) for the next task, which misses `missing` trials, when the tasks still
    to tune (it included) miss `demand`: its share of the time left is in proportion to its
    missing trials; when the time left cannot buy `demand` trials, every task is thinned alike
    (never below one trial)."""
    share_s = time_left_s * missing / demand
    affordable = time_left_s / max(seconds_per_trial, 1e-3)
    trials = missing
    if demand > affordable:
        trials = max(1, int(missing * affordable / demand))
    return share_s, trials


def trials_per_iteration(trials: int, share_s: float, seconds_per_trial: float) -> int:
    """Trials per search iteration: a batch should fit in the task's share, so the time checks
    between batches bite (at least 4, at most `TRIALS_PER_ITER` and `trials`)."""
    per_iter = max(4, min(trials, TRIALS_PER_ITER, int(share_s / max(seconds_per_trial, 1e-3))))
    return min(trials, per_iter)
