"""Tuning from the app: one MetaSchedule job at a time on its own thread, with progress and
cancel, through `Workspace.tune`; when it ends the state re-profiles so tuned rows join the plan.

A mixin of `AppState` (which owns the params `tuning`, `workspace`, `error` and the worker)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from placement import api
from profiles.errors import UserError


class TuningJobs:
    def tunable(self) -> tuple[list[str], list[str]]:
        """Pieces that can be tuned (those with ONNX files) and the hardware classes measured here."""
        ws = self.workspace
        if ws is None or ws.profiles_table is None or ws.origin is None:
            return [], []  # tables handed in: no ONNX files to tune
        local = ws.profiles[ws.profiles["source"] == "measured-local"]
        return sorted(set(ws.profiles["piece"])), sorted(set(local["hardware"]))

    def start_tuning(self, piece: str, hardware: str, budget_s: float) -> None:
        """Tune one piece for one hardware class within `budget_s` (a background thread, with
        progress in `tuning`); when done, re-profile so tuned rows join the plan."""
        if self._tune_thread is not None and self._tune_thread.is_alive():
            self._fail("tuning: a tuning job is already running; cancel it first")
            return
        if self.workspace is None:
            return
        self._tune_cancel.clear()
        self._set(tuning={"phase": "starting", "piece": piece, "hardware": hardware, "budget_s": budget_s})
        self._tune_thread = threading.Thread(target=self._tune_job, args=(piece, hardware, float(budget_s)),
                                             daemon=True, name="placement-app-tune")
        self._tune_thread.start()

    def _tune_job(self, piece: str, hardware: str, budget_s: float) -> None:
        child = {}

        def on_progress(p) -> None:
            if p.child_pid:
                child["pid"] = p.child_pid
                if self._tune_cancel.is_set():  # cancelled before the child had started
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.child_pid, signal.SIGTERM)
            self._set(tuning={"phase": p.phase, "piece": piece, "hardware": hardware, "budget_s": budget_s,
                           "trials_done": p.trials_done, "trials_planned": p.trials_planned,
                           "tasks_done": p.tasks_done, "tasks_total": p.tasks_total,
                           "time_left_s": p.time_left_s, "child_pid": child.get("pid")})

        try:
            outcome = self.workspace.tune(budget=budget_s, hardware=hardware, pieces=[piece],
                                          progress=on_progress, cancel=self._tune_cancel.is_set)
            if outcome.failed:
                raise api.InputError(outcome.failed[0][1])
        except (UserError, ValueError) as exc:
            cancelled = self._tune_cancel.is_set()
            self._set(tuning={**self.tuning, "phase": "cancelled" if cancelled else "failed"})
            if not cancelled:
                self._fail(f"tuning {piece}: {exc}")
            return
        except Exception as exc:
            self._set(tuning={**self.tuning, "phase": "failed"})
            self._fail(f"tuning {piece}: {type(exc).__name__}: {exc}")
            return
        self._set(tuning={**self.tuning, "phase": "done"})
        self._submit(self._reprofile_job)

    def wait_tuning(self, timeout: float = 60.0) -> bool:
        """Block until the tuning job (if any) has ended (tests, scripts); False on timeout."""
        thread = self._tune_thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def cancel_tuning(self) -> None:
        """Stop the tuning child; the trials it finished stay in the database (a rerun resumes)."""
        self._tune_cancel.set()
        pid = self.tuning.get("child_pid")
        if pid and self._tune_thread is not None and self._tune_thread.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
