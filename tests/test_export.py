"""`placement export`: a plan turned into a bundle, checked by running what it contains.

Tiny two-kernel ONNX models (tests/test_tuning.py's) and table-based Workspaces keep this fast:
no profiling; TVM compiles a few small libraries (x86 for this machine's hardware class, aarch64
with the cross compiler), each once per test session.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from factories import offer_row, profile_row, run_cli
from test_tuning import two_kernel_model

from placement import api
from placement.evaluate import evaluate, resolve_assignment
from placement.export import check_bundle, export_bundle, manifest_json_schema, read_manifest
from placement.export.layout import plan_layout
from placement.plan import make_plan
from placement.solver import SolveResult
from placement.spec import parse_spec
from pricing import table as ot
from profiles import table as pt
from profiles.hardware import local_hardware_name

DOCS = Path(__file__).resolve().parents[1] / "docs"
EDGE_HW = "arm-cortex-a76-4c"
HAS_CROSS = shutil.which("aarch64-linux-gnu-gcc") is not None


def spec_data(first: Path, second: Path) -> dict:
    return {
        "name": "export-test",
        "models": [{"name": "first", "onnx": str(first), "inputs": {"x": [1, 16]}, "split": ["r"]},
                   {"name": "second", "onnx": str(second), "inputs": {"x": [1, 8]}}],
        "dataflow": [{"from": "source", "to": "first", "bytes": 64},
                     {"from": "first", "to": "second", "bytes": 32},
                     {"from": "second", "to": "sink", "bytes": 16}],
        "load": {"sites": 4, "rate_per_site_rps": 1.0},
        "slo": {"latency_ms": 1000, "percentile": 95},
        "monthly_budget_usd": 1e6,
        "hardware": {"edge": ["pi"], "cloud": [{"provider": "aws", "regions": ["r0"]}]},
        "network": {"uplink_mbps": 50.0, "downlink_mbps": 100.0, "rtt_ms": {"r0": 10.0}},
        "edge": {"amortisation_months": 36, "electricity_usd_per_kwh": 0.15},
    }


def tables(cloud_hw: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    offers = pd.DataFrame([
        offer_row("edge:pi", "edge", "pi", EDGE_HW, unit=100.0, power=5.0, memory_gib=4.0),
        offer_row("aws:r0:c1", "cloud", "c1", cloud_hw, hourly=0.1),
    ], columns=ot.OFFER_COLUMNS)
    rows = []
    for piece in ("first", "first@r:head", "first@r:tail", "second"):
        for hw in (EDGE_HW, cloud_hw):
            for runtime in ("tvm", "onnxruntime"):
                rows.append(profile_row(piece, hw, 1.0, 1.5, memory_mb=10.0, runtime=runtime))
    return offers, pd.DataFrame(rows, columns=pt.PROFILE_COLUMNS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A workspace over two tiny models, its tables as CSVs and a spec file (for the CLI)."""
    root = tmp_path_factory.mktemp("export")
    first = two_kernel_model(root / "first.onnx", n=16, m=8)
    second = two_kernel_model(root / "second.onnx", n=8, m=4)
    cloud_hw = local_hardware_name()
    offers, profiles = tables(cloud_hw)
    data = spec_data(first, second)
    ws = api.Workspace(parse_spec(data, origin="test"), offers_table=offers, profiles_table=profiles)
    (root / "app.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    offers.to_csv(root / "offers.csv", index=False)
    profiles.to_csv(root / "profiles.csv", index=False)
    return {"root": root, "ws": ws, "cloud_hw": cloud_hw}


def what_if(ws, wanted: dict[str, str], split: dict | None = None):
    """A plan of the placements named (`split`: piece -> (tensor, tail runtime, head runtime))."""
    problem = ws.problem(prune=False)
    chosen = resolve_assignment(problem, {**{p: "aws:r0:c1" for p in split or {}}, **wanted})
    for piece, (tensor, runtime, head_runtime) in (split or {}).items():
        chosen[piece] = next(o for o in problem.options[piece] if o.cut == tensor and o.runtime == runtime
                             and o.head and o.head.runtime == head_runtime)
    evaluation = evaluate(problem, chosen)
    result = SolveResult(status="evaluated", assignment={p: o.id for p, o in chosen.items()},
                         objective="what-if", objective_value=evaluation.monthly_usd, best_bound=None,
                         gap=None, wall_time_s=0.0, workers=0, seed=0, time_limit_s=0.0, num_options=1)
    plan = make_plan(problem, result, evaluation, tvm_version="0.27.0")
    assert plan.feasible, plan.violations
    return plan


@pytest.fixture(scope="module")
def cloud_bundle(setup, tmp_path_factory):
    """first on the cloud pool with TVM (x86, this machine's class), second there with ORT."""
    plan = what_if(setup["ws"], {"first": "aws:r0:c1/tvm", "second": "aws:r0:c1/onnxruntime"})
    out = tmp_path_factory.mktemp("bundles") / "cloud"
    export_bundle(setup["ws"], plan, out)
    return out, plan


@pytest.fixture(scope="module")
def split_bundle(setup, tmp_path_factory):
    """first split at r: head on the Pi (ORT), tail in the cloud (TVM, x86); second on the Pi (TVM, aarch64)."""
    wanted = {"second": "edge:pi/tvm" if HAS_CROSS else "edge:pi/onnxruntime"}
    plan = what_if(setup["ws"], wanted, split={"first": ("r", "tvm", "onnxruntime")})
    out = tmp_path_factory.mktemp("bundles") / "split"
    export_bundle(setup["ws"], plan, out)
    return out, plan


def ort_run(path: Path, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def tvm_run(lib: Path, feeds: dict, io: dict) -> list[np.ndarray]:
    import tvm
    from tvm import relax

    from profiles.tvm_adapter import to_numpy_list

    dev = tvm.cpu(0)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), dev)
    args = [tvm.runtime.tensor(feeds[v["name"]], dev) for v in io["inputs"]]
    return to_numpy_list(vm["main"](*args))


def random_feeds(io: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {v["name"]: rng.standard_normal(v["shape"]).astype(v["dtype"]) for v in io["inputs"]}


def files_of(bundle: Path, kind: str) -> list:
    return [f for f in read_manifest(bundle).files if f.kind == kind]


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


EM_X86_64, EM_AARCH64 = 62, 183


def test_every_x86_library_loads_here_and_matches_onnxruntime(cloud_bundle, split_bundle):
    checked = 0
    for bundle, _ in (cloud_bundle, split_bundle):
        for entry in files_of(bundle, "library"):
            lib = bundle / entry.path
            if elf_machine(lib) != EM_X86_64:
                continue
            folder = lib.parents[2]
            io = json.loads((folder / "io.json").read_text())
            feeds = random_feeds(io)
            want = ort_run(folder / "model.onnx", feeds)
            got = tvm_run(lib, feeds, io)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
            checked += 1
    assert checked >= 2  # first (whole) and first's tail


def test_onnxruntime_pieces_carry_session_settings_and_equal_the_source_model(cloud_bundle, setup):
    bundle, _ = cloud_bundle
    [session] = files_of(bundle, "session")
    settings = json.loads((bundle / session.path).read_text())
    assert settings["execution_providers"] == ["CPUExecutionProvider"] and settings["intra_op_num_threads"] >= 1
    folder = (bundle / session.path).parents[2]
    io = json.loads((folder / "io.json").read_text())
    assert io["inputs"] == [{"name": "x", "shape": [1, 8], "dtype": "float32"}]
    feeds = random_feeds(io, seed=3)
    np.testing.assert_allclose(ort_run(folder / "model.onnx", feeds)[0],
                               ort_run(setup["root"] / "second.onnx", feeds)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not HAS_CROSS, reason="aarch64-linux-gnu-gcc not installed")
def test_aarch64_libraries_are_aarch64_shared_objects(split_bundle):
    bundle, _ = split_bundle
    libs = [f for f in files_of(bundle, "library") if f.hardware == EDGE_HW]
    assert libs, "the Pi's TVM piece has a library"
    for entry in libs:
        data = (bundle / entry.path).read_bytes()
        assert elf_machine(bundle / entry.path) == EM_AARCH64
        assert data[16:18] == (3).to_bytes(2, "little")  # ET_DYN: a shared object
        assert entry.target["mtriple"] == "aarch64-linux-gnu"


def test_split_head_and_tail_compose_to_the_whole_model(split_bundle, setup):
    bundle, _ = split_bundle
    head_dir = bundle / "artifacts" / "first_r_head" / "b1"
    tail_dir = bundle / "artifacts" / "first_r_tail" / "b1"
    head_io = json.loads((head_dir / "io.json").read_text())
    tail_io = json.loads((tail_dir / "io.json").read_text())
    feeds = random_feeds(head_io, seed=7)
    whole = ort_run(setup["root"] / "first.onnx", feeds)[0]
    cut = ort_run(head_dir / "model.onnx", feeds)[0]
    tail_feeds = {tail_io["inputs"][0]["name"]: cut}
    np.testing.assert_allclose(ort_run(tail_dir / "model.onnx", tail_feeds)[0], whole, rtol=1e-4, atol=1e-5)
    [lib] = list((tail_dir / setup["cloud_hw"] / "tvm").glob("model.so"))
    np.testing.assert_allclose(tvm_run(lib, tail_feeds, tail_io)[0], whole, rtol=1e-4, atol=1e-5)
    # the site sends the head's output to the tail's pool
    pipeline = json.loads(next((bundle / "edge").glob("*/pipeline.json")).read_text())
    head = next(p for p in pipeline["pieces"] if p["name"] == "first:head")
    assert head["next"] == ["pool:first-c1-r0/first:tail"]
    assert pipeline["cloud_urls"] == {"first-c1-r0": "http://REPLACE-ME-first-c1-r0:8000"}
    assert pipeline["entry"] == ["first:head"]


def test_manifests_validate_offline(cloud_bundle, split_bundle):
    import jsonschema
    import kubernetes_validate

    from placement.export import kserve, triton

    for bundle, plan in (cloud_bundle, split_bundle):
        manifest = json.loads((bundle / "manifest.json").read_text())
        jsonschema.validate(manifest, manifest_json_schema())
        assert manifest["plan"]["spec_sha256"] == plan.provenance.spec_sha256
        for entry in files_of(bundle, "kubernetes"):
            for doc in yaml.safe_load_all((bundle / entry.path).read_text()):
                kubernetes_validate.validate(doc, "1.30", strict=True)
                if doc["kind"] == "Deployment":
                    pool = next(p for p in plan_layout(plan).pools if p.name == doc["metadata"]["name"])
                    assert doc["spec"]["replicas"] == pool.replicas
                    assert doc["spec"]["template"]["spec"]["nodeSelector"] == {
                        "node.kubernetes.io/instance-type": "c1", "topology.kubernetes.io/region": "r0"}
        for entry in files_of(bundle, "kserve"):
            doc = yaml.safe_load((bundle / entry.path).read_text())
            assert kserve.validate(doc) == []
            assert doc["spec"]["predictor"]["model"]["modelFormat"] == {"name": "onnx"}
        configs = files_of(bundle, "triton-config")
        assert configs
        for entry in configs:
            config = triton.parse_config((bundle / entry.path).read_text())
            assert config.platform == "onnxruntime_onnx" and len(config.input) == 1
        assert check_bundle(bundle) == []


def test_triton_parse_rejects_a_field_triton_does_not_know():
    from google.protobuf import text_format

    from placement.export import triton

    with pytest.raises(text_format.ParseError):
        triton.parse_config('name: "m"\nmax_batch_sise: 4\n')
    with pytest.raises(text_format.ParseError):
        triton.parse_config('input { name: "x" data_type: TYPE_FLOAT32 dims: [ 3 ] }\n')


def test_check_catches_a_changed_file_and_an_edited_plan(cloud_bundle, tmp_path, monkeypatch, capsys):
    bundle = tmp_path / "copy"
    shutil.copytree(cloud_bundle[0], bundle)
    assert check_bundle(bundle) == []
    config = next((bundle / "cloud").glob("*/triton/*/config.pbtxt"))
    config.write_text(config.read_text().replace("KIND_CPU", "KIND_GPU"))
    problems = check_bundle(bundle)
    assert any("config.pbtxt: changed since export" in p for p in problems)
    code, _, err = run_cli(monkeypatch, capsys, "export", "--check", str(bundle))
    assert code == 1 and "changed since export" in err
    # a plan edited to another replica count no longer matches the manifest's pools
    plan = json.loads((bundle / "plan.json").read_text())
    plan["placements"][0]["replicas"] += 1
    (bundle / "plan.json").write_text(json.dumps(plan))
    assert any("do not match plan.json" in p for p in check_bundle(bundle))



def cli_args(setup, *extra):
    root = setup["root"]
    return ["export", str(root / "app.yaml"), "--offers", str(root / "offers.csv"),
            "--profiles", str(root / "profiles.csv"), *extra]


def test_a_bad_or_mismatched_plan_is_one_line_and_exit_2(setup, cloud_bundle, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"application": "x"}')
    code, _, err = run_cli(monkeypatch, capsys, *cli_args(setup, "--plan", str(bad), "-o", str(tmp_path / "b")))
    assert code == 2 and err.count("\n") == 1 and "not a plan.json" in err
    other = json.loads(cloud_bundle[1].model_dump_json())
    other["provenance"]["spec_sha256"] = "0" * 64
    mismatched = tmp_path / "other.json"
    mismatched.write_text(json.dumps(other))
    code, _, err = run_cli(monkeypatch, capsys, *cli_args(setup, "--plan", str(mismatched), "-o", str(tmp_path / "b")))
    assert code == 2 and err.count("\n") == 1 and "made from another spec" in err
    assert not (tmp_path / "b").exists()


def test_cli_exports_a_plan_file_and_checks_it(setup, cloud_bundle, tmp_path, monkeypatch, capsys):
    plan_path = tmp_path / "plan.json"
    cloud_bundle[1].write(plan_path)
    out = tmp_path / "bundle"
    code, stdout, err = run_cli(monkeypatch, capsys, *cli_args(setup, "--plan", str(plan_path), "-o", str(out)))
    assert code == 0, err
    assert "2 cloud pool(s), 0 edge site(s)" in stdout
    code, stdout, _ = run_cli(monkeypatch, capsys, "export", str(setup["root"] / "app.yaml"), "--check", str(out))
    assert code == 0 and "matches its plan" in stdout


def test_edge_runner_runs_a_site_pipeline(setup, tmp_path):
    """An all-ORT site: the shipped runner chains first -> second on the device."""
    plan = what_if(setup["ws"], {"first": "edge:pi/onnxruntime", "second": "edge:pi/onnxruntime"})
    out = tmp_path / "edge"
    export_bundle(setup["ws"], plan, out)
    [site] = list((out / "edge").iterdir())
    sys.path.insert(0, str(site))
    try:
        import runner
    finally:
        sys.path.remove(str(site))
    pipeline = runner.Pipeline(site / "pipeline.json")
    assert pipeline.spec["entry"] == ["first"]
    x = np.random.default_rng(1).standard_normal((1, 16)).astype("float32")
    got = pipeline.run("first", {"x": x})
    mid = ort_run(setup["root"] / "first.onnx", {"x": x})[0]
    want = ort_run(setup["root"] / "second.onnx", {"x": mid})[0]
    np.testing.assert_allclose(next(iter(got.values())), want, rtol=1e-5, atol=1e-6)
    assert (site / "docker-compose.yml").is_file() and list(site.glob("*.service"))


def test_committed_manifest_schema_is_current():
    committed = json.loads((DOCS / "manifest.schema.json").read_text())
    assert committed == manifest_json_schema(), "regenerate: python -m placement.export.manifest > docs/manifest.schema.json"


@pytest.mark.skipif(not (HAS_CROSS and shutil.which("nvcc")), reason="needs aarch64-linux-gnu-gcc and nvcc")
def test_a_cuda_target_compiles_without_a_gpu(setup, tmp_path):
    """A Jetson's piece: CUDA kernels (dlight default schedules) with an aarch64 host library."""
    import onnx

    from placement.export.tvm_build import compile_library

    model = onnx.load(str(setup["root"] / "second.onnx"))
    info = compile_library(model, {"x": [1, 8]}, "nvidia-orin-nano", "tvm", tmp_path / "model.so")
    assert info["target"]["kind"] == "cuda" and info["cross_compiler"] == "aarch64-linux-gnu-gcc"
    assert elf_machine(tmp_path / "model.so") == EM_AARCH64
    again = compile_library(model, {"x": [1, 8]}, "nvidia-orin-nano", "tvm", tmp_path / "again.so")
    assert again["cached"] and (tmp_path / "again.so").read_bytes() == (tmp_path / "model.so").read_bytes()


def test_session_settings_follow_the_runtime_and_the_hardware_class():
    from placement.export.artifacts import session_settings

    ort_settings = session_settings(EDGE_HW)
    assert ort_settings["intra_op_num_threads"] == 4 and ort_settings["runtime"] == "onnxruntime"
    assert session_settings("nvidia-t4")["execution_providers"][0] == "CUDAExecutionProvider"
    ov = session_settings(EDGE_HW, "openvino")
    assert ov["runtime"] == "openvino" and ov["properties"]["INFERENCE_NUM_THREADS"] == "4"


def test_a_pool_of_co_located_models_is_one_deployment_serving_each(setup, tmp_path):
    """first and second share one pool (issue 15): one Deployment, one Triton repository with a
    model per piece, one manifest pool naming both; the check re-derives it from plan.json."""
    plan = what_if(setup["ws"], {"first": "aws:r0:c1/shared", "second": "aws:r0:c1/shared"})
    assert {p.pool for p in plan.placements} == {"aws:r0:c1/r1/pool[first+second]"}
    manifest = export_bundle(setup["ws"], plan, tmp_path / "shared")
    assert [(p.name, p.model, p.replicas, p.pieces) for p in manifest.pools] == [
        ("first-second-c1-r0", "first+second", 1, ["first", "second"])]
    deployments = [doc for entry in files_of(tmp_path / "shared", "kubernetes")
                   for doc in yaml.safe_load_all((tmp_path / "shared" / entry.path).read_text())
                   if doc["kind"] == "Deployment"]
    assert [(d["metadata"]["name"], d["spec"]["replicas"]) for d in deployments] == [("first-second-c1-r0", 1)]
    repo = tmp_path / "shared" / "cloud" / "first-second-c1-r0" / "triton"
    assert sorted(p.name for p in repo.iterdir()) == ["first", "second"]
    assert check_bundle(tmp_path / "shared") == []


def test_the_edge_runner_opens_sessions_with_the_providers_and_options_measured():
    from placement.export.artifacts import session_settings
    from placement.export.edge_runner import session_providers

    trt = session_settings("nvidia-t4", "onnxruntime-trt")
    on_gpu = session_providers(trt, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert on_gpu[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True"})
    assert [p for p, _ in on_gpu] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    # a machine without the GPU providers falls back to what it has, never to nothing
    assert session_providers(trt, ["CPUExecutionProvider"]) == [("CPUExecutionProvider", {})]
    assert session_providers({}, ["CPUExecutionProvider"]) == [("CPUExecutionProvider", {})]
