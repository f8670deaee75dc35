"""Progress of a tuning run: `TuneProgress` events, made from the search child's event dicts."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TuneProgress:
    """One step of `tune_piece`.

    phase: "start" (child process started, `child_pid` set), "extract" (importing the model),
    "plan" (tasks known), "tune" (trials measured), "stopped" (budget spent), "compile" and
    "measure" (the tuned model), "done". `estimated_ms` is the sum over tasks of weight x best
    trial so far, over the `tasks_with_estimate` tasks that have one (a kernel-time estimate of
    the model's latency; untuned kernels are not in it)."""

    phase: str
    piece: str
    hardware: str
    tasks_total: int = 0
    tasks_done: int = 0
    task: str = ""
    trials_done: int = 0
    trials_planned: int = 0
    estimated_ms: float | None = None
    tasks_with_estimate: int = 0
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    child_pid: int | None = None

    @property
    def time_left_s(self) -> float:
        return max(0.0, self.budget_s - self.elapsed_s)


class ProgressTracker:
    """Turns the child's event dicts into `TuneProgress`."""

    def __init__(self, emit):
        self.emit = emit
        self.tasks: list[dict] = []
        self.best: dict[int, float] = {}
        self.trials_done = 0
        self.trials_planned = 0
        self.tasks_done = 0
        self.task = ""
        self.pid: int | None = None

    def _estimate(self) -> tuple[float | None, int]:
        if not self.best:
            return None, 0
        total_s = sum(self.tasks[i]["weight"] * b for i, b in self.best.items())
        return total_s * 1000.0, len(self.best)

    def _send(self, phase: str) -> None:
        est, n = self._estimate()
        self.emit(phase, tasks_total=len(self.tasks), tasks_done=self.tasks_done, task=self.task,
                  trials_done=self.trials_done, trials_planned=self.trials_planned,
                  estimated_ms=est, tasks_with_estimate=n, child_pid=self.pid)

    def on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "child":
            self.pid = event["pid"]
            self._send("start")
        elif kind == "extract":
            self._send("extract")
        elif kind == "plan":
            self.tasks = event["tasks"]
            self.trials_planned = int(event["trials_planned"])
            self.tasks_done = sum(1 for t in self.tasks if t["skip"])
            for i, t in enumerate(self.tasks):
                if t.get("best_s") is not None:
                    self.best[i] = t["best_s"]
            self._send("plan")
        elif kind == "replan":
            self.trials_planned = int(event["trials_planned"])
            self.tasks_done = 0
            self._send("tune")
        elif kind == "trials":
            i = event["index"]
            self.task = self.tasks[i]["name"] if i < len(self.tasks) else ""
            self.trials_done += int(event.get("new", 0))
            if event.get("best_s") is not None:
                self.best[i] = min(self.best.get(i, math.inf), event["best_s"])
            if event.get("planned") is not None:
                self.trials_planned = int(event["planned"])
            if event.get("task_done"):
                self.tasks_done += 1
            self._send("tune")
