"""Budgeted MetaSchedule tuning: budgets, the shared database, kill -9 and resume, tvm-tuned rows.

The TVM tests tune a two-kernel model (MatMul+Add+Relu, then MatMul) for a handful of trials:
each run is a spawned child that imports TVM (seconds), so the file stays around a minute on
2 cores."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import onnx
import pytest
from factories import write_single_model_spec
from onnx import TensorProto, helper, numpy_helper

from profiles.tuning import (
    TVM_TUNED,
    TuningDatabase,
    TuningError,
    cached_tuned_rows,
    default_row_providers,
    format_duration,
    parse_budget,
    tune_piece,
    tuning_dir,
)
from profiles.tuning_budget import (
    MAX_TRIALS_PER_TASK,
    initial_trials_per_task,
    missing_trials,
    task_allotment,
    top_up_trials,
    trials_per_iteration,
)


def two_kernel_model(path, n: int = 64, m: int = 32):
    """x[1,n] -> relu(x @ W + B) @ W2 -> [1,m]: two tuning tasks."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype("float32"), name)
             for name, s in (("W", (n, n)), ("B", (n,)), ("W2", (n, m)))]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Add", ["y", "B"], ["z"]),
         helper.make_node("Relu", ["z"], ["r"]), helper.make_node("MatMul", ["r", "W2"], ["out"])],
        "two_kernels", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, m])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(root))
    return root


@pytest.fixture
def piece(tmp_path):
    from profiles.profiler import PieceSource

    path = two_kernel_model(tmp_path / "two.onnx")
    return PieceSource(piece="two", onnx_path=path, input_shapes={"x": [1, 64]})


# --- no TVM ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("20m", 1200), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("45", 45),
    (" 2m 30s ", 150), (30, 30),
])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5m", "0s", "m"])
def test_parse_budget_rejects(text):
    with pytest.raises(ValueError):
        parse_budget(text)


def test_format_duration():
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"


def test_the_budget_buys_trials_per_task_from_the_calibration():
    # 20 s left at 2 s per trial over 2 tasks: 5 trials each
    assert initial_trials_per_task(20, 2.0, 2) == 5
    assert initial_trials_per_task(20, 2.0, 2, fixed=3) == 3
    assert initial_trials_per_task(20, 2.0, 2, previous=7) == 7  # an interrupted run's plan
    assert initial_trials_per_task(0.5, 2.0, 2) == 1  # never below one
    assert initial_trials_per_task(1e9, 0.1, 1) == MAX_TRIALS_PER_TASK
    # tasks that already hold T records (or ran out of candidates) need nothing
    assert missing_trials(4, [0, 4, 6, 1], [False, False, False, True]) == [4, 0, 0, 0]


def test_fast_trials_raise_the_trials_per_task_and_slow_ones_thin_every_task():
    # trials measured at 0.5 s instead of the calibrated 2 s: the time left buys 4x more
    assert top_up_trials(16, 0.5, 2) == 16
    assert top_up_trials(16, 2.0, 2) == 4
    assert top_up_trials(-1, 0.5, 2) == 0
    # enough time: the task gets every trial it misses, and time in proportion to them
    assert task_allotment(30, 5, 10, 1.0) == (15.0, 5)
    # too slow for all: each task is thinned alike, so the last ones are not starved
    assert task_allotment(10, 5, 10, 2.0) == (5.0, 2)  # 10 s buy 5 of the 10 missing
    assert task_allotment(10, 5, 5, 2.0) == (10.0, 5)  # the last task: whatever is left
    assert task_allotment(1, 5, 10, 2.0)[1] == 1
    # a search iteration fits in the task's share (between 4 and 32 trials, never above n)
    assert trials_per_iteration(40, 10.0, 1.0) == 10
    assert trials_per_iteration(3, 10.0, 1.0) == 3
    assert trials_per_iteration(100, 1000.0, 1.0) == 32


def _write_db(directory, workloads, records, torn: bytes = b""):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "database_workload.json").write_text(
        "".join(json.dumps([h, "mod"]) + "\n" for h in workloads))
    with open(directory / "database_tuning_record.json", "wb") as f:
        for index, secs in records:
            f.write((json.dumps([index, [["trace"], secs, {"kind": "llvm"}, []]]) + "\n").encode())
        f.write(torn)


def test_database_stats_and_repair_of_a_torn_line(tmp_path):
    db = TuningDatabase(tmp_path / "db")
    _write_db(db.directory, ["111", "222"],
              [(0, [2e-6, 4e-6]), (0, [1e10]), (1, [5e-6]), (0, [1e-6])],
              torn=b'[1, [["tra')  # a process killed in the middle of appending
    assert db.repair() == 1
    assert db.repair() == 0
    text = (db.directory / "database_tuning_record.json").read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 4
    stats = db.workload_stats()
    assert stats["111"].records == 3 and stats["111"].best_s == pytest.approx(1e-6)
    assert stats["222"].records == 1 and stats["222"].best_s == pytest.approx(5e-6)
    assert db.record_count() == 4


def test_calibration_blends_runs(tmp_path):
    db = TuningDatabase(tmp_path / "db")
    db.directory.mkdir()
    assert db.seconds_per_trial() is None
    db.update_calibration(10, 20.0)
    assert db.seconds_per_trial() == pytest.approx(2.0)
    db.update_calibration(30, 30.0)  # 1 s/trial over 30 trials, 2 s over the first 10
    assert db.seconds_per_trial() == pytest.approx((2.0 * 10 + 1.0 * 30) / 40)
    db.update_calibration(2, 100.0)  # too few trials to say anything
    assert db.seconds_per_trial() == pytest.approx(1.25)


def test_database_lives_per_hardware_and_tvm_version(cache_dir):
    path = tuning_dir("x86-zen4-2c", "0.27.0.post1")
    assert path == cache_dir / "tuning" / "x86-zen4-2c" / "0.27.0.post1"


def test_tuning_a_class_that_cannot_run_here_is_refused(piece, cache_dir):
    from profiles.measure import NotMeasurableHereError

    with pytest.raises(NotMeasurableHereError):
        tune_piece(piece, "arm-cortex-a76-4c", 10)


# --- with TVM (tiny budgets) -------------------------------------------------------------------

def test_tune_spreads_trials_and_caches_a_tvm_tuned_row(piece, cache_dir):
    from profiles.hardware import local_hardware
    from profiles.profiler import profile_pieces

    events = []
    result = tune_piece(piece, None, 120, trials_per_task=4, on_progress=events.append)
    local = local_hardware().name

    # every task got its trials: none piled onto the first task
    assert len(result.tasks) == 2
    assert all(0 < t.trials_run <= 4 for t in result.tasks)
    assert result.trials_run == sum(t.trials_run for t in result.tasks)
    stats = TuningDatabase.for_hardware(local).workload_stats()
    assert {t.workload: t.trials_run for t in result.tasks} == {
        h: s.records for h, s in stats.items()}
    assert all(t.best_us and t.best_us > 0 for t in result.tasks)

    phases = [e.phase for e in events]
    for phase in ("start", "plan", "tune", "compile", "measure", "done"):
        assert phase in phases
    tuned = [e for e in events if e.phase == "tune"]
    assert tuned[-1].estimated_ms is not None and tuned[-1].tasks_with_estimate == 2
    assert tuned[-1].trials_done == result.trials_run
    assert events[0].child_pid and events[-1].tasks_done == 2

    # the tuned model was measured with the MeasureConfig protocol and agrees with ORT
    m = result.measurement
    assert m.runtime == TVM_TUNED and m.n_samples >= 5 and m.latency_ms_p95 >= m.latency_ms_p50
    assert m.max_rel_diff_vs_ort is not None and m.max_rel_diff_vs_ort < 1e-3
    assert result.row["runtime"] == TVM_TUNED and result.row["source"] == "measured-local"
    assert result.row["hardware"] == local

    # a later profile picks the cached row up when given the default row providers, and only then
    rows = cached_tuned_rows([piece])
    assert len(rows) == 1 and rows[0]["latency_ms_p50"] == result.row["latency_ms_p50"]
    table = profile_pieces([piece], [], runtimes=("onnxruntime",),
                           row_providers=default_row_providers()).table
    assert TVM_TUNED in set(table["runtime"])
    plain = profile_pieces([piece], [], runtimes=("onnxruntime",)).table
    assert TVM_TUNED not in set(plain["runtime"])

    # a second run with the same target has nothing left to do
    again = tune_piece(piece, None, 120, trials_per_task=4, measure=False)
    assert again.trials_run == 0 and again.tasks_skipped == 2


def test_killed_tuning_keeps_its_records_and_resumes(piece, cache_dir):
    from profiles.hardware import local_hardware

    killed = []

    def kill_after_first_trials(event):
        if event.phase == "tune" and event.trials_done > 0 and not killed:
            killed.append(event.child_pid)
            os.kill(event.child_pid, signal.SIGKILL)

    with pytest.raises(TuningError, match="SIGKILL"):
        tune_piece(piece, None, 120, trials_per_task=4, measure=False,
                   on_progress=kill_after_first_trials)
    assert killed
    db = TuningDatabase.for_hardware(local_hardware().name)
    before = db.workload_stats()
    assert sum(s.records for s in before.values()) >= 1  # the finished trials survived kill -9

    result = tune_piece(piece, None, 120, trials_per_task=4, measure=False)
    after = db.workload_stats()
    for task in result.tasks:
        had = before.get(task.workload)
        assert task.records_before == (had.records if had else 0)
        if had and had.records >= 4:  # done before the kill: skipped, nothing redone
            assert task.skipped and task.trials_run == 0
            assert after[task.workload].records == had.records
        else:  # only what was missing
            assert task.trials_run <= 4 - task.records_before
    assert any(t.skipped for t in result.tasks)
    assert all(after[t.workload].records <= 4 for t in result.tasks)


def test_budget_is_a_wall_clock_total_per_model_and_a_rerun_spends_only_what_is_left(
        piece, cache_dir):
    """End to end, with assertions that hold however loaded the machine is: how many trials a
    second buys is the budget functions' business (tested above without a clock)."""
    from profiles.hardware import local_hardware

    db = TuningDatabase.for_hardware(local_hardware().name)
    db.directory.mkdir(parents=True)
    db.update_calibration(100, 200.0)  # "2 s per trial": the budget's first plan is small
    t0 = time.monotonic()
    first = tune_piece(piece, None, 20, measure=False)
    elapsed = time.monotonic() - t0
    assert elapsed < 20 + 40  # the budget, plus the child's start and one batch
    assert all(t.trials_run > 0 for t in first.tasks)  # every task got a share
    assert all(t.trials_run <= first.trials_per_task for t in first.tasks)  # none piled on
    assert first.search_s < 20

    # the model's plan records the search time spent: the budget is a total per model
    (plan_path,) = db.directory.glob("runs/*/plan.json")
    spent = json.loads(plan_path.read_text())["spent_s"]
    assert spent >= first.search_s

    again = tune_piece(piece, None, 20, measure=False)  # same budget: only what is left
    assert again.spent_before_s == pytest.approx(spent)
    if spent >= 20 - 1:  # the first run used its budget: nothing is left
        assert again.trials_run == 0
    else:  # it finished its plan early: the rerun may spend the rest, never more
        assert again.search_s <= 20 - spent + 15  # what was left, plus one batch that overruns
        assert all(t.trials_run <= again.trials_per_task for t in again.tasks)

    more = tune_piece(piece, None, 40, measure=False)  # a larger budget tunes further
    assert more.spent_before_s >= spent
    assert more.trials_run > 0
    assert more.trials_per_task >= first.trials_per_task  # the plan resumes, top-ups only raise


def test_cli_tune_then_profile_shows_the_tuned_row(piece, cache_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from placement.cli import app

    spec = tmp_path / "spec.yaml"
    write_single_model_spec(spec, app="tune-app", model="two", onnx_path=piece.onnx_path)
    runner = CliRunner()
    bad = runner.invoke(app, ["tune", str(spec), "--budget", "soon"])
    assert bad.exit_code != 0 and "--budget" in str(bad.exception)
    result = runner.invoke(app, ["tune", str(spec), "--budget", "2m", "--trials-per-task", "2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout[result.stdout.index("["):])
    assert tuned[0]["piece"] == "two" and tuned[0]["trials_run"] > 0
    assert tuned[0]["row"]["runtime"] == TVM_TUNED

    profiled = runner.invoke(app, ["profile", str(spec), "--json"])
    assert profiled.exit_code == 0, profiled.output
    rows = json.loads(profiled.stdout[profiled.stdout.index("["):])
    mine = [r for r in rows if r["runtime"] == TVM_TUNED]
    assert len(mine) == 1
    assert mine[0]["latency_ms_p50"] == pytest.approx(tuned[0]["row"]["latency_ms_p50"], rel=1e-6)


def test_a_model_tvm_cannot_import_is_not_offered_a_resume(tmp_path, cache_dir):
    from test_profiles import celu_model

    from profiles.profiler import PieceSource

    onnx.save(celu_model(), tmp_path / "celu.onnx")
    source = PieceSource(piece="celu", onnx_path=tmp_path / "celu.onnx", input_shapes={"x": [1, 16]})
    with pytest.raises(TuningError) as info:
        tune_piece(source, None, 30, measure=False)
    message = str(info.value)
    assert "Celu" in message and "cannot be tuned" in message and "ONNX Runtime still measures" in message
    assert "run again" not in message
