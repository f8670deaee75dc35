"""Every input is checked at the door: mutated specs and CSVs end in exit 2 with one line, or in a
plan (0) or an explained infeasible one (1) — never an internal error (3). Every --help page of
every command works. Output paths that cannot be written are one line, after the plan is shown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
import yaml
from factories import one_model_spec, one_model_tables, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement.cli import EXIT_INPUT, app

REAL = Path(__file__).parent / "data" / "real"
NASTY = ["", "inf", "-inf", "nan", "-1", "0", "1e308", "-0.0", "abc", "\u2603", "1,2", '"', "null",
         "[]", "{a: 1}", "1e-320", "99999999999999999999999", "tvm", "measured-local", "edge"]



def _inputs(folder: Path) -> Path:
    """A one-model spec over a small exported model, with offers and profiles CSVs beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL / "no-batch.onnx", folder / "det.onnx")
    offers, profiles, _ = one_model_tables()
    offers.to_csv(folder / "offers.csv", index=False)
    profiles.to_csv(folder / "profiles.csv", index=False)
    spec = one_model_spec(sites=100, uplink=50.0)
    spec["models"][0].update(onnx="det.onnx", inputs={"input": [64]})
    (folder / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _plan(monkeypatch, capsys, folder: Path, *extra):
    return run_cli(monkeypatch, capsys, "plan", folder / "app.yaml", "--profiles", folder / "profiles.csv",
                   "--offers", folder / "offers.csv", "-o", folder / "plan.json", *extra)


def _assert_clean(code: int, err: str) -> None:
    assert code in (0, 1, EXIT_INPUT), err
    assert "internal error" not in err and "Traceback" not in err
    if code == EXIT_INPUT:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        assert not [line for line in err.splitlines()
                    if line.strip() and not line.startswith(("error:", "warning:"))], err


@pytest.fixture
def base(tmp_path):
    return _inputs(tmp_path / "base")


def test_the_base_inputs_plan(base, monkeypatch, capsys):
    code, out, err = _plan(monkeypatch, capsys, base)
    assert code == 0, err


SLOW_OK = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _fresh(template: Path) -> Path:
    """A copy of the inputs of its own for one example (examples must not see each other's edits)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cli-inputs-", dir=template.parent)) / "in"
    shutil.copytree(template, folder)
    return folder


@SLOW_OK
@given(data=st.data())
def test_mutated_specs_are_bad_input_or_plans(base, monkeypatch, capsys, data):
    base = _fresh(base)
    text = (base / "app.yaml").read_text()
    kind = data.draw(st.sampled_from(["value", "bytes", "delete-line", "duplicate-line"]))
    lines = text.splitlines()
    if kind == "value":
        i = data.draw(st.sampled_from([i for i, line in enumerate(lines) if ":" in line]))
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {data.draw(st.sampled_from(NASTY))}"
        raw = ("\n".join(lines) + "\n").encode()
    elif kind == "bytes":
        raw = bytearray(text.encode())
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] = data.draw(st.integers(0, 255))
        raw = bytes(raw)
    elif kind == "delete-line":
        del lines[data.draw(st.integers(0, len(lines) - 1))]
        raw = ("\n".join(lines) + "\n").encode()
    else:
        i = data.draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        raw = ("\n".join(lines) + "\n").encode()
    (base / "app.yaml").write_bytes(raw)
    code, _, err = _plan(monkeypatch, capsys, base)
    _assert_clean(code, err)


@SLOW_OK
@given(data=st.data())
def test_mutated_csvs_are_bad_input_or_plans(base, monkeypatch, capsys, data):
    base = _fresh(base)
    name = data.draw(st.sampled_from(["offers.csv", "profiles.csv"]))
    lines = (base / name).read_text().splitlines()
    kind = data.draw(st.sampled_from(["cell", "cell", "cell", "drop-column", "truncate"]))
    if kind == "cell":
        r = data.draw(st.integers(1, len(lines) - 1))
        cells = lines[r].split(",")
        cells[data.draw(st.integers(0, len(cells) - 1))] = data.draw(st.sampled_from(NASTY))
        lines[r] = ",".join(cells)
    elif kind == "drop-column":
        c = data.draw(st.integers(0, len(lines[0].split(",")) - 1))
        lines = [",".join(x for j, x in enumerate(line.split(",")) if j != c) for line in lines]
    else:
        lines = lines[: data.draw(st.integers(0, len(lines) - 1))]
    (base / name).write_text("\n".join(lines) + "\n")
    code, _, err = _plan(monkeypatch, capsys, base)
    _assert_clean(code, err)


def test_the_issue_s_bad_inputs_each_name_themselves(base, monkeypatch, capsys):
    cases = []
    offers = (base / "offers.csv").read_text()
    spot = offers.splitlines()[0].split(",").index("spot_hourly_usd")
    rows = offers.splitlines()
    cells = rows[2].split(",")
    cells[spot] = "-0.03"
    (base / "neg.csv").write_text("\n".join([rows[0], rows[1], ",".join(cells)]) + "\n")
    cases.append((["--offers", base / "neg.csv"], "spot_hourly_usd"))
    cells[spot] = "inf"
    (base / "inf.csv").write_text("\n".join([rows[0], rows[1], ",".join(cells)]) + "\n")
    cases.append((["--offers", base / "inf.csv"], "finite"))
    profiles = (base / "profiles.csv").read_text().replace("imported", "guessed", 1)
    (base / "src.csv").write_text(profiles)
    cases.append((["--profiles", base / "src.csv"], "column source"))
    for extra, words in cases:
        code, _, err = _plan(monkeypatch, capsys, base, *extra)
        assert code == EXIT_INPUT and words in err and err.count("error:") == 1, err
    (base / "app.yaml").write_bytes(b"\xff\xfe" + (base / "app.yaml").read_bytes())
    code, _, err = _plan(monkeypatch, capsys, base)
    assert code == EXIT_INPUT and "not UTF-8" in err
    (base / "deep.yaml").write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "plan", base / "deep.yaml")
    assert code == EXIT_INPUT and "nested" in err
    code, _, err = run_cli(monkeypatch, capsys, "frontier", base / "app.yaml", "--points", "0")
    assert code == EXIT_INPUT and "--points" in err


def test_a_missing_price_overrides_file_is_named_before_any_profiling(base, monkeypatch, capsys):
    spec = yaml.safe_load((base / "app.yaml").read_text())
    spec["hardware"]["price_overrides"] = "nope.csv"
    (base / "app.yaml").write_text(yaml.safe_dump(spec))
    from placement import api

    with pytest.raises(api.InputError, match="price_overrides"):
        api.Workspace.open(base / "app.yaml", offers_csv=base / "offers.csv")


@pytest.mark.parametrize("where", ["dir", "under-file"])
def test_an_unwritable_output_path_is_one_line_after_the_plan(base, monkeypatch, capsys, where):
    target = base if where == "dir" else base / "app.yaml" / "plan.json"
    code, out, err = run_cli(monkeypatch, capsys, "plan", base / "app.yaml", "--profiles",
                             base / "profiles.csv", "--offers", base / "offers.csv", "-o", target)
    assert code == EXIT_INPUT and err.count("error:") == 1 and str(target) in err
    assert "one-model: optimal" in out  # the plan that was solved is still shown
    assert not [p for p in base.iterdir() if p.name.startswith(".") and "tmp" in p.name]


def _commands(command, path: list[str]):
    yield path
    if isinstance(getattr(command, "commands", None), dict):  # a group (typer vendors click)
        for name, sub in command.commands.items():
            yield from _commands(sub, [*path, name])


def test_every_help_page_of_every_command_works(monkeypatch, capsys):
    paths = list(_commands(typer.main.get_command(app), []))
    assert len(paths) > 10
    for path in paths:
        code, out, err = run_cli(monkeypatch, capsys, *path, "--help")
        assert code == 0, (path, err)
        assert "Usage:" in out and not err, (path, err)
