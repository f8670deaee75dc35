"""The MetaSchedule search, in the child process `profiles.tuning.tune_piece` spawns.

`child_tune` extracts the model's tasks, plans trials per task (`profiles.tuning_budget`),
tunes task by task into the class's shared database and stops on the budget; it reports each
step to the parent as an event dict and returns what each task got. Crashes and hangs stay in
this process. Two TVM 0.27 pitfalls are worked around here (measured on a 2-core machine):
- MetaSchedule's `LocalBuilder` starts a fresh process pool (an `import tvm` each, seconds) for
  every batch; `persistent_builder` keeps one pool, restarted every 50 batches, and builds
  without `import tvm.s_tir.tensor_intrin` (see `profiles.tvm_compile.light_tensor_intrin`).
- XGBoost trains with one thread: with two, its OpenMP threads fight TVM's thread pool (20 s
  per fit instead of 0.4 s).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from profiles.paths import atomic_write_text
from profiles.rows import now_utc
from profiles.tuning_budget import (
    MAX_PASSES,
    MAX_TRIALS_PER_TASK,
    initial_trials_per_task,
    missing_trials,
    observed_seconds_per_trial,
    task_allotment,
    top_up_trials,
    trials_per_iteration,
)
from profiles.tuning_db import FAILED_RUN_SECS, TuningDatabase, WorkloadStats
from profiles.tvm_compile import import_model, light_tensor_intrin


class BudgetSpent(Exception):
    """Raised inside the search (from a measure callback) when the wall-clock budget is spent."""


def make_f_build():
    """MetaSchedule's default build without `import tvm.s_tir.tensor_intrin`.

    A nested function, so the builder's worker processes receive it by value (cloudpickle) and
    need not import this package."""

    def _build(mod, target, _params):
        from tvm.driver import build as tvm_build
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

        mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
        return tvm_build(mod, target=target)

    return _build


def persistent_builder(max_workers: int, timeout_s: float = 60.0, restart_every: int = 50):
    """A MetaSchedule builder whose worker pool lives across batches (restarted now and then:
    TVM restarts its pool every batch because of a slow leak in the workers)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import _worker_func
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class _Builder(PyBuilder):
        def __init__(self):
            super().__init__()
            self.f_build = make_f_build()
            self.pool = None
            self.uses = 0

        def build(self, build_inputs):
            if self.pool is None or self.uses >= restart_every:
                if self.pool is not None:
                    self.pool.shutdown()
                self.pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_s)
                self.uses = 0
            self.uses += 1
            results = []
            f_build = self.f_build
            for item in self.pool.map_with_error_catching(
                    lambda x: _worker_func(*x),
                    [(f_build, None, b.mod, b.target, None) for b in build_inputs]):
                if item.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(item.value, None))
                elif item.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"build timed out after {timeout_s} s"))
                else:
                    results.append(BuilderResult(None, f"build failed: {item.value}"))
            return results

    return _Builder()


def trial_reporter(report, on_batch):
    """A measure callback: counts trials, tracks the best, reports, stops on the budget."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class _Reporter(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
                  runner_results):
            best = None
            for result in runner_results:
                secs = [float(x) for x in (result.run_secs or [])]
                if result.error_msg is None and secs:
                    mean = sum(secs) / len(secs)
                    if mean < FAILED_RUN_SECS:
                        best = mean if best is None else min(best, mean)
            on_batch(len(measure_candidates), best)

    return _Reporter()


def child_tune(payload: dict, report) -> dict:
    """In the child: extract tasks, plan trials per task, tune task by task, stop on the budget."""
    t_start = time.time()
    deadline = t_start + float(payload["budget_left_s"])
    light_tensor_intrin(payload["arch"])
    report({"event": "extract", "stage": "extract"})
    import tvm_ffi
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.logging import get_loggers_from_work_dir
    from tvm.s_tir.meta_schedule.utils import fork_seed

    mod, target, note = import_model(payload["model_path"], payload["inputs"], payload["target"])
    if note:
        print(note, flush=True)
    with target:
        mod = relax.get_pipeline("zero")(mod)
    extracted = [t for t in ms.relax_integration.extract_tasks(mod, target)
                 if not t.mod.attrs.get("tirx.is_scheduled", False)]
    db_files = TuningDatabase(Path(payload["database"]))
    stats = db_files.workload_stats()
    exhausted = db_files.exhausted()
    hashes = [str(tvm_ffi.structural_hash(t.dispatched[0])) for t in extracted]
    before = [stats.get(h, WorkloadStats(0, None)) for h in hashes]

    # plan: the budget buys T trials per task (of all tasks, done or not)
    spt = float(payload["seconds_per_trial"])
    fixed = bool(payload["trials_per_task"])
    per_task = initial_trials_per_task(  # resumes the plan of an interrupted run, if any
        deadline - time.time(), spt, len(extracted), fixed=payload["trials_per_task"],
        previous=payload.get("previous_trials_per_task"))
    records = [b.records for b in before]
    remaining = missing_trials(per_task, records, [h in exhausted for h in hashes])
    plan = [{"name": t.task_name, "weight": int(t.weight), "before": b.records,
             "best_s": b.best_s, "skip": r == 0} for t, b, r in zip(extracted, before, remaining)]
    report({"event": "plan", "stage": "plan", "tasks": plan, "trials_per_task": per_task,
            "trials_planned": sum(remaining)})

    outcomes = [dict(name=t.task_name, workload=h, weight=int(t.weight), records_before=b.records,
                     target_trials=per_task, trials_run=0,
                     best_us=None if b.best_s is None else b.best_s * 1e6,
                     skipped=True, exhausted=h in exhausted)
                for t, h, b in zip(extracted, hashes, before)]
    state = {"trials": 0, "search_s": 0.0, "stopped": False, "index": 0, "task_trials": 0,
             "task_deadline": deadline, "cut": False, "per_task": per_task}

    def save_plan() -> None:
        spent = float(payload["spent_before_s"]) + (time.time() - t_start)
        atomic_write_text(Path(payload["plan_path"]), json.dumps(
            {"budget_s": payload["budget_s"], "spent_s": spent,
             "trials_per_task": state["per_task"], "updated": now_utc()}, indent=1) + "\n")

    if any(remaining) or not fixed:
        database = ms.database.JSONDatabase(work_dir=payload["database"],
                                            module_equality="structural")
        cores = int(payload["cores"])
        tools: dict = {}

        def tuning_tools():
            if not tools:  # started on first use: a run with nothing to do starts no pools
                tools["builder"] = persistent_builder(max_workers=max(1, cores))
                tools["runner"] = ms.runner.LocalRunner(timeout_sec=30)
                tools["cost_model"] = ms.CostModel.create("xgb", num_tuning_cores=1)
                tools["loggers"] = get_loggers_from_work_dir(
                    payload["log_dir"], [t.task_name for t in extracted])
                tools["seeds"] = fork_seed(int(payload["seed"]), n=len(extracted))
                tools["callbacks"] = [*ms.MeasureCallback.create("default"),
                                      trial_reporter(report, on_batch)]
            return tools

        def on_batch(n_new: int, best: float | None) -> None:
            state["trials"] += n_new
            state["task_trials"] += n_new
            i = state["index"]
            outcomes[i]["trials_run"] += n_new
            records[i] += n_new
            if best is not None:
                old = outcomes[i]["best_us"]
                outcomes[i]["best_us"] = best * 1e6 if old is None else min(old, best * 1e6)
            save_plan()
            report({"event": "trials", "stage": "tune", "index": i, "new": n_new,
                    "best_s": best})
            now = time.time()
            if now >= deadline:
                state["stopped"] = True
                raise BudgetSpent("budget spent")
            if now >= state["task_deadline"]:  # this task used its share of the time left
                state["cut"] = True
                raise BudgetSpent("task's share of the budget spent")

        planned_total = sum(remaining)
        for pass_no in range(1 if fixed else MAX_PASSES):
            if pass_no > 0:
                # trials were faster than calibrated: raise T with the time left (top-up pass)
                active = [i for i, h in enumerate(hashes) if not outcomes[i]["exhausted"]]
                observed = observed_seconds_per_trial(state["search_s"], state["trials"], spt, 2)
                extra = top_up_trials(deadline - time.time(), observed, len(active))
                if not active or extra < 2:
                    break
                state["per_task"] = min(MAX_TRIALS_PER_TASK, state["per_task"] + extra)
                remaining = missing_trials(state["per_task"], records,
                                           [o["exhausted"] for o in outcomes])
                planned_total = state["trials"] + sum(remaining)
                report({"event": "replan", "stage": "tune", "trials_planned": planned_total})
            todo = [i for i, r in enumerate(remaining) if r > 0]
            if not todo:
                continue
            for position, i in enumerate(todo):
                now = time.time()
                if now >= deadline:
                    state["stopped"] = True
                    break
                # Each task left gets a share of the time left, in proportion to its missing
                # trials: when trials are slower than calibrated, later tasks get fewer, not none.
                observed = observed_seconds_per_trial(state["search_s"], state["trials"], spt, 8)
                demand = sum(remaining[j] for j in todo[position:])
                share_s, n = task_allotment(deadline - now, remaining[i], demand, observed)
                planned_total -= remaining[i] - n
                state.update(index=i, task_trials=0, cut=False, task_deadline=now + share_s)
                outcomes[i]["skipped"] = False
                t = tuning_tools()
                task = extracted[i]
                population = int(min(512, max(64, 16 * n)))
                strategy = ms.search_strategy.EvolutionarySearch(
                    population_size=population, init_min_unmeasured=min(50, population // 4))
                context = ms.TuneContext(
                    mod=task.dispatched[0], target=task.target,
                    space_generator="post-order-apply", search_strategy=strategy,
                    task_name=task.task_name, logger=t["loggers"][i], rand_state=t["seeds"][i],
                    num_threads=max(1, cores)).clone()
                t0 = time.time()
                try:
                    ms.tune.tune_tasks(
                        tasks=[context], task_weights=[float(task.weight)],
                        work_dir=payload["database"], max_trials_global=n,
                        max_trials_per_task=n,
                        num_trials_per_iter=trials_per_iteration(n, share_s, observed),
                        builder=t["builder"], runner=t["runner"], database=database,
                        cost_model=t["cost_model"], measure_callbacks=t["callbacks"],
                        task_scheduler="round-robin")
                except Exception:  # noqa: BLE001 - our own budget stop comes back wrapped
                    if not (state["stopped"] or state["cut"]):
                        raise
                finally:
                    state["search_s"] += time.time() - t0
                if state["stopped"]:
                    break
                if not state["cut"] and state["task_trials"] < n:  # the search space ran out
                    outcomes[i]["exhausted"] = True
                    db_files.mark_exhausted(hashes[i])
                report({"event": "trials", "stage": "tune", "index": i, "new": 0,
                        "best_s": None, "task_done": True, "planned": planned_total})
            if state["stopped"]:
                break
    save_plan()
    for outcome in outcomes:
        outcome["target_trials"] = state["per_task"]
    return {"tasks": outcomes, "trials_per_task": state["per_task"],
            "trials_run": state["trials"], "search_s": state["search_s"],
            "stopped_by_budget": state["stopped"],
            "seconds_per_trial": (state["search_s"] / state["trials"]) if state["trials"] else spt}
