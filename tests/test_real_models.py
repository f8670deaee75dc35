"""Real-shaped exported models (tests/data/real, made by make_real_models.py with torch.onnx and
onnx.helper; no torch needed here): a model's input shapes are one call whatever its leading
dim says (fixed at 6, dynamic, or absent); a model TVM cannot take is still measured by ONNX
Runtime with the input values the spec gives; the three-model chain plans end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from factories import run_cli
from onnx import TensorProto, helper, numpy_helper

from placement import api
from profiles.cache import ProfileCache
from profiles.measure import MeasureConfig
from profiles.paths import CACHE_ENV
from profiles.profiler import PieceSource, profile_pieces, rebatched_shapes
from profiles.table import BATCH, RUNTIME, SOURCE, validate_profile_table

REAL = Path(__file__).parent / "data" / "real"
FAST = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=300)
ORT = ("onnxruntime",)
CROPS = {"input": [6, 3, 32, 32]}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))



def _source(name: str, shapes: dict, **kw) -> PieceSource:
    return PieceSource(piece=name, onnx_path=REAL / f"{name}.onnx", input_shapes=shapes, **kw)


def test_a_leading_dim_fixed_at_6_is_one_call_and_batches_stack_calls(tmp_path):
    source = _source("chain-embed6", CROPS)
    report = profile_pieces([source], [], runtimes=ORT, config=FAST, batches=(1, 2))
    table = validate_profile_table(report.table)
    assert sorted(table[BATCH]) == [1, 2] and not report.problems  # batch 1 = six crops
    assert rebatched_shapes(source, 2) == {"input": [12, 3, 32, 32]}  # two calls stacked


def test_a_dynamic_leading_dim_given_as_6_is_one_call():
    source = _source("dyn-batch", CROPS)
    report = profile_pieces([source], [], runtimes=ORT, config=FAST)
    assert list(report.table[BATCH]) == [1] and not report.problems
    assert rebatched_shapes(source, 3) == {"input": [18, 3, 32, 32]}


def test_a_model_without_a_batch_dim_is_one_call_and_says_why_it_is_not_stacked():
    source = _source("no-batch", {"input": [64]})
    report = profile_pieces([source], [], runtimes=ORT, config=FAST, batches=(1, 2))
    assert list(report.table[BATCH]) == [1]
    [problem] = report.problems
    assert problem.error_type == "FixedBatch" and "batch 1 only" in str(problem)


def _values(tmp_path) -> Path:
    data = np.load(REAL / "rnn-if-rate.npz")
    path = tmp_path / "rnn-values.npz"
    np.savez(path, rate=data["rate"], audio=data["audio"])
    return path


def test_tvm_cannot_onnxruntime_can_with_the_input_values_given(tmp_path):
    shapes = {"audio": [1, 1600], "rate": [1]}
    source = _source("rnn-if-rate", shapes, sample_inputs=_values(tmp_path))
    report = profile_pieces([source], [], runtimes=("tvm", "onnxruntime"), config=FAST)
    table = validate_profile_table(report.table)
    assert list(table[RUNTIME]) == ["onnxruntime"] and list(table[SOURCE]) == ["measured-local"]
    [problem] = report.problems
    assert problem.runtime == "tvm" and "LSTM" in str(problem)  # names the operator
    assert "\n" not in str(problem) and "ProfileProblem(" not in str(problem)

    # random values for `rate` make the model fail: that is why the spec can give them
    blind = profile_pieces([_source("rnn-if-rate", shapes)], [], runtimes=ORT, config=FAST,
                           cache=ProfileCache(tmp_path / "blind"))
    assert blind.table.empty and "Reshape" in str(blind.problems[0])


def _if_with_branch_shapes() -> onnx.ModelProto:
    """An If whose branches give outputs of different sizes: no static shape for TVM."""
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "then", [],
                             [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["b"], axis=1)], "else", [],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 8])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "branchy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_model_that_cannot_be_prepared_is_measured_by_onnxruntime(tmp_path):
    path = tmp_path / "branchy.onnx"
    onnx.save(_if_with_branch_shapes(), str(path))
    source = PieceSource(piece="branchy", onnx_path=path, input_shapes={"x": [1, 4]})
    report = profile_pieces([source], [], runtimes=("tvm", "onnxruntime"), config=FAST)
    assert list(report.table[RUNTIME]) == ["onnxruntime"]
    [problem] = report.problems
    assert problem.runtime == "tvm" and problem.error_type == "PrepareError"
    assert "the model uses If" in str(problem) and "first" not in str(problem)
    from profiles.profiler import piece_io_bytes

    assert piece_io_bytes(source).input_bytes == 16  # known by running it once


def _chain(tmp_path) -> Path:
    """The chain spec and its models in a folder of their own (paths relative to the spec)."""
    folder = tmp_path / "app"
    folder.mkdir()
    for name in ("chain.yaml", "chain-detector.onnx", "chain-embed6.onnx", "chain-attr6.onnx"):
        shutil.copy(REAL / name, folder / name)
    return folder / "chain.yaml"


def _chain_profiles_csv(spec: Path, tmp_path) -> Path:
    """ONNX Runtime rows measured here and estimated on the spec's hardware (no TVM: fast)."""
    ws = api.Workspace.open(spec)
    report = profile_pieces(ws.pieces, ws.hardware(), runtimes=ORT, config=FAST)
    path = tmp_path / "chain-profiles.csv"
    report.table.to_csv(path, index=False)
    return path


def test_the_three_model_chain_plans_and_has_a_frontier(tmp_path, monkeypatch, capsys):
    spec = _chain(tmp_path)
    profiles = _chain_profiles_csv(spec, tmp_path)
    assert set(validate_profile_table(__import__("pandas").read_csv(profiles))[BATCH]) == {1}
    monkeypatch.chdir(tmp_path)  # not the spec's folder: paths resolve from the spec
    code, out, err = run_cli(monkeypatch, capsys, "plan", spec, "--profiles", profiles,
                             "--pricing-model", "spot", "--discount", "aws=10", "-o", tmp_path / "p.json")
    assert code == 0, err
    assert "camera-chain: optimal" in out and all(p in out for p in ("detector", "embed", "attributes"))
    code, out, err = run_cli(monkeypatch, capsys, "frontier", spec, "--profiles", profiles, "--json")
    assert code == 0, err
    assert len(yaml.safe_load(out)) >= 1


def test_a_frontier_with_no_feasible_point_explains_and_exits_1(tmp_path, monkeypatch, capsys):
    spec = _chain(tmp_path)
    profiles = _chain_profiles_csv(spec, tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["monthly_budget_usd"] = 1.0  # nothing fits: the sweep has no point at all
    spec.write_text(yaml.safe_dump(data))
    code, out, err = run_cli(monkeypatch, capsys, "frontier", spec, "--profiles", profiles)
    assert code == 1
    assert "no Pareto point" in err and "why:" in out


@pytest.mark.slow
def test_the_chain_profiles_with_every_runtime_and_plans(tmp_path, monkeypatch, capsys):
    """What a new user runs: `placement plan` measures the three exported models here (TVM,
    ONNX Runtime, ...) and plans; then `placement frontier` on the cached rows."""
    spec = _chain(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "plan", spec, "-o", tmp_path / "plan.json")
    assert code == 0, err
    assert "camera-chain: optimal" in out
    code, out, err = run_cli(monkeypatch, capsys, "frontier", spec)
    assert code == 0, err
    assert "Pareto points" in out


def test_rows_only_at_another_batch_are_named_as_the_reason(tmp_path, monkeypatch, capsys):
    """The issue's first symptom: crop models stored only as batch-6 rows. The plan says so and
    blames no constraint group that is not the cause (not memory, not throughput)."""
    import pandas as pd

    spec = _chain(tmp_path)
    table = pd.read_csv(_chain_profiles_csv(spec, tmp_path))
    table.loc[table["piece"] == "embed", "batch"] = 6
    relabelled = tmp_path / "batch6.csv"
    table.to_csv(relabelled, index=False)
    code, out, err = run_cli(monkeypatch, capsys, "plan", spec, "--profiles", relabelled,
                             "-o", tmp_path / "p.json", "--json")
    assert code == 1
    plan = yaml.safe_load(out)
    [message] = plan["explanation"]["messages"]
    assert "embed" in message and "only at batch 6" in message and "batch 1" in message
    assert plan["explanation"]["binding"] == ["coverage"]
    code, out, err = run_cli(monkeypatch, capsys, "frontier", spec, "--profiles", relabelled)
    assert code == 1 and "only at batch 6" in out
