"""Measurements taken while another process keeps the cores busy are re-measured and, when the
machine stays busy, flagged and not stored — never silently kept as a quiet measured-local row.

The hog is injected here (one spinning process per core), so the test is deterministic on any
machine; it asserts what the profiler did (flag, attempts, nothing cached), not timings."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from profiles import contention
from profiles.cache import ProfileCache
from profiles.contention import CpuWatch
from profiles.measure import MeasureConfig
from profiles.paths import CACHE_ENV
from profiles.profiler import PieceSource, profile_pieces

pytestmark = pytest.mark.contention

FAST = MeasureConfig(warmup_runs=1, repeat=10, min_repeat_ms=2.0, max_measure_s=0.5, timeout_s=120,
                     contended_retries=1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def _spin(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


class Hog:
    """One busy process per core for at most `seconds` (they stop by themselves)."""

    def __init__(self, seconds: float = 120.0):
        self.seconds = seconds
        self.procs: list = []

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")
        stop_at = time.time() + self.seconds
        self.procs = [ctx.Process(target=_spin, args=(stop_at,), daemon=True)
                      for _ in range(os.cpu_count() or 1)]
        for p in self.procs:
            p.start()
        time.sleep(0.5)  # let them reach their loops
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(10)


def _mlp(tmp_path) -> PieceSource:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 256])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    return PieceSource(piece="mlp", onnx_path=path, input_shapes={"x": [64, 256]})


def test_the_watch_sees_a_busy_neighbour():
    with Hog(30.0), CpuWatch() as watch:
        time.sleep(1.0)  # this process idles; the hog does not
    assert watch.result.contended and watch.result.others_cpu_share >= contention.CONTENDED_SHARE


def test_a_row_measured_under_a_cpu_hog_is_re_measured_flagged_and_not_stored(tmp_path):
    source = _mlp(tmp_path)
    cache = ProfileCache(tmp_path / "profiles")
    with Hog():
        report = profile_pieces([source], [], runtimes=("onnxruntime",), config=FAST, cache=cache)
    m = report.measurements[("mlp", "onnxruntime")]
    assert m.others_cpu_share >= contention.CONTENDED_SHARE
    assert m.attempts == 1 + FAST.contended_retries  # re-measured before giving up
    assert m.spinning is True and m.threads  # the runtime settings are stated
    [problem] = [p for p in report.problems if p.error_type == "Contention"]
    assert "mlp (onnxruntime)" in str(problem) and "noise figure" in str(problem)
    assert "ProfileProblem(" not in str(problem)
    # stored with its noise figure, which the store shows
    [stored] = cache.store.table().to_dict("records")
    assert stored["piece"] == "mlp" and stored["source"] == "measured-local"
    [listed] = cache.store.listing().to_dict("records")
    assert listed["others_cpu_share"] >= contention.CONTENDED_SHARE and len(listed["model"]) == 12

    # reused while the machine is still busy: said again, not silently
    with Hog():
        again = profile_pieces([source], [], runtimes=("onnxruntime",), config=FAST, cache=cache)
    assert [p.error_type for p in again.problems] == ["Contention"]


def test_with_children_the_watch_counts_reaped_children_as_its_own():
    """`placement verify`'s workers are its children: their CPU is the run's, not other work's."""
    burn = [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"]
    with CpuWatch(with_children=True) as mine:
        subprocess.run(burn, check=True)  # started and reaped inside the block
    with CpuWatch() as theirs:
        subprocess.run(burn, check=True)
    child_share = 0.6 / (theirs.result.wall_s * (os.cpu_count() or 1))
    assert theirs.result.others_cpu_share >= 0.8 * child_share
    assert mine.result.others_cpu_share <= theirs.result.others_cpu_share - 0.7 * child_share
