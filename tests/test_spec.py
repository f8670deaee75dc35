"""Each way a spec can be wrong gives its own one-line message naming the field, and exit code 2."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from factories import offer_row, one_model_spec

from placement.cli import main
from placement.resolve import check_hardware_ids, resolve_models
from placement.spec import SpecError, load_spec, parse_spec


def write_spec(tmp_path, data, name="app.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["placement", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def base():
    return one_model_spec()


def mutate(**changes):
    data = copy.deepcopy(base())
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return data


DELETE = object()

CASES = [
    ("unknown top-level key", mutate(colour="blue"), "colour", "unknown key"),
    ("unknown nested key", mutate(load__sitez=3), "load.sitez", "unknown key"),
    ("zero sites", mutate(load__sites=0), "load.sites", "must be > 0"),
    ("negative rate", mutate(load__rate_per_site_rps=-1), "load.rate_per_site_rps", "must be > 0"),
    ("zero budget", mutate(monthly_budget_usd=0), "monthly_budget_usd", "must be > 0"),
    ("negative SLO", mutate(slo__latency_ms=-5), "slo.latency_ms", "must be > 0"),
    ("zero calls", mutate(models__0__calls_per_request=0), "models[0].calls_per_request", "must be > 0"),
    ("zero uplink", mutate(network__uplink_mbps=0), "network.uplink_mbps", "must be > 0"),
    ("missing load", mutate(load=DELETE), "load", "required field is missing"),
    ("dangling edge", mutate(dataflow=[{"from": "source", "to": "det"}, {"from": "det", "to": "sink"},
                                       {"from": "det", "to": "ghost"}]), "dataflow[2].to", "dangling"),
    ("cycle", {**base(), "models": [{"name": "a", "onnx": "zoo:resnet18"}, {"name": "b", "onnx": "zoo:resnet18"}],
               "dataflow": [{"from": "source", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"},
                            {"from": "b", "to": "sink"}]}, "dataflow", "cycle a -> b -> a"),
    ("unreachable model", {**base(), "models": [{"name": "det", "onnx": "zoo:resnet18"},
                                                {"name": "lost", "onnx": "zoo:resnet18"}],
                           "dataflow": [{"from": "source", "to": "det"}, {"from": "det", "to": "sink"},
                                        {"from": "lost", "to": "sink"}]}, "models[1]", "not reachable"),
    ("duplicate model", {**base(), "models": [{"name": "det", "onnx": "zoo:resnet18"},
                                              {"name": "det", "onnx": "zoo:resnet50"}]}, "models[1].name", "twice"),
    ("region without rtt", mutate(hardware__cloud__0__regions=["r0", "r9"]), "hardware.cloud[0].regions[1]", "rtt_ms"),
    ("bad pricing model", mutate(hardware__pricing_model="cheap"), "hardware.pricing_model", "on-demand"),
    ("no hardware", mutate(hardware={"edge": [], "cloud": []}), "hardware", "at least one"),
    ("reserved name", mutate(models__0__name="sink"), "models[0].name", "reserved"),
]


@pytest.mark.parametrize("label,data,field,words", CASES, ids=[c[0] for c in CASES])
def test_each_bad_field_has_its_own_message(label, data, field, words):
    with pytest.raises(SpecError) as exc:
        parse_spec(data, origin="app.yaml")
    assert exc.value.field == field
    assert words in exc.value.message
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith(f"app.yaml: {field}: ")


def test_good_spec_parses_and_has_stable_digest():
    first, second = parse_spec(base()), parse_spec(copy.deepcopy(base()))
    assert first.digest() == second.digest()
    assert parse_spec(mutate(load__sites=7)).digest() != first.digest()


def test_unknown_zoo_model_is_named_when_the_models_are_resolved():
    spec = parse_spec(mutate(models__0__onnx="zoo:alexnet"))  # parsing reads nothing
    with pytest.raises(SpecError) as exc:
        resolve_models(spec, None, "app.yaml")
    assert exc.value.field == "models[0].onnx"
    assert "alexnet" in exc.value.message
    assert str(exc.value).startswith("app.yaml: models[0].onnx: ")


def test_missing_onnx_file(tmp_path):
    data = mutate(models__0__onnx="nothere.onnx", models__0__inputs={"input": [1, 3, 224, 224]})
    spec, base_dir = load_spec(write_spec(tmp_path, data))  # parsing reads no files
    with pytest.raises(SpecError) as exc:
        resolve_models(spec, base_dir)
    assert exc.value.field == "models[0].onnx"
    assert "does not exist" in exc.value.message


def test_corrupt_onnx_file(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage that is not protobuf \xff\xff\xff")
    data = mutate(models__0__onnx="broken.onnx", models__0__inputs={"input": [1, 3, 224, 224]})
    with pytest.raises(SpecError) as exc:
        resolve_models(*load_spec(write_spec(tmp_path, data)))
    assert exc.value.field == "models[0].onnx"
    assert "not a valid ONNX model" in exc.value.message


def test_onnx_file_needs_matching_inputs(tmp_path):
    import onnx

    from profiles.zoo import build_zoo_model

    onnx.save(build_zoo_model("mobilenetv2"), tmp_path / "m.onnx")
    wrong = mutate(models__0__onnx="m.onnx", models__0__inputs={"image": [1, 3, 224, 224]})
    with pytest.raises(SpecError) as exc:
        resolve_models(*load_spec(write_spec(tmp_path, wrong)))
    assert exc.value.field == "models[0].inputs.image"
    rank = mutate(models__0__onnx="m.onnx", models__0__inputs={"input": [1, 224, 224]})
    with pytest.raises(SpecError) as exc:
        resolve_models(*load_spec(write_spec(tmp_path, rank)))
    assert "dims" in exc.value.message
    good = mutate(models__0__onnx="m.onnx", models__0__inputs={"input": [1, 3, 224, 224]})
    spec, base_dir = load_spec(write_spec(tmp_path, good))
    assert base_dir == tmp_path.resolve()
    (resolved,) = resolve_models(spec, base_dir)
    assert resolved.onnx_path == tmp_path.resolve() / "m.onnx"
    assert resolved.input_shapes == {"input": [1, 3, 224, 224]}


def test_unknown_device_and_instance_ids():
    import pandas as pd

    from pricing.table import OFFER_COLUMNS

    offers = pd.DataFrame([
        offer_row("edge:pi", "edge", "pi", "hw-pi", unit=100.0, power=5.0),
        offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.1),
    ], columns=OFFER_COLUMNS)
    check_hardware_ids(parse_spec(base()), offers)
    with pytest.raises(SpecError) as exc:
        check_hardware_ids(parse_spec(mutate(hardware__edge=["pi", "toaster"])), offers)
    assert exc.value.field == "hardware.edge[1]" and "toaster" in exc.value.message
    with pytest.raises(SpecError) as exc:
        check_hardware_ids(parse_spec(mutate(hardware__cloud__0__instance_types=["c1", "z9.huge"])), offers)
    assert exc.value.field == "hardware.cloud[0].instance_types[1]"


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodels: [\n  - oops: : :\n")
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert exc.value.field.startswith("line ")


def test_cli_bad_spec_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    path = write_spec(tmp_path, mutate(load__sites=-3))
    code, stdout, stderr = run_cli(monkeypatch, capsys, "plan", str(path))
    assert code == 2
    assert stderr.strip().count("\n") == 0
    assert "load.sites" in stderr and "Traceback" not in stderr


def test_cli_missing_spec_file_exits_2(tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "plan", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in stderr


def test_cli_as_a_real_process_prints_no_traceback(tmp_path):
    path = write_spec(tmp_path, mutate(dataflow=[{"from": "source", "to": "det"}]))
    proc = subprocess.run([sys.executable, "-m", "placement.cli", "plan", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "models[0]" in proc.stderr and "no path to sink" in proc.stderr
