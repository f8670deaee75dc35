"""Remote measurement through a REAL TVM RPC tracker and servers on 127.0.0.1.

The fixtures start `python -m tvm.exec.rpc_tracker` and `python -m tvm.exec.rpc_server` as
subprocesses (random free ports, their own process groups, killed at teardown). Only x86 code
runs here, so a key such as "fake-rpi5" *stands for* a device but is mapped to a class that runs
on this machine (this machine's own class, or another x86 class of it); the aarch64 path is
checked by cross-compiling and reading the ELF header instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from factories import write_single_model_spec

from profiles.remote import (
    RemoteConfigError,
    default_remote_config,
    load_remote_config,
    parse_tracker,
    remote_config_from_dict,
)

pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado")


# --- the remote config (no network) ------------------------------------------------------------

def test_remote_config_flat_and_devices_forms(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("rpi5: arm-cortex-a76-4c\nnuc: x86-zen4-2c\n")
    config = load_remote_config(flat)
    assert config.devices["rpi5"].hardware == "arm-cortex-a76-4c"
    assert config.tracker is None

    full = tmp_path / "full.yaml"
    full.write_text("tracker: 10.0.0.5:9190\ndevices:\n  rpi5: arm-cortex-a76-4c\n"
                    "  pi4:\n    hardware: arm-cortex-a72-4c\n    cc: my-gcc\n"
                    "    session_timeout_s: 60\n")
    config = load_remote_config(full)
    assert config.tracker == "10.0.0.5:9190"
    assert config.devices["pi4"].cc == "my-gcc" and config.devices["pi4"].session_timeout_s == 60


@pytest.mark.parametrize("data, message", [
    ({"rpi5": "no-such-class"}, "unknown hardware class"),
    ({"rpi5": "aws-inferentia2"}, "no TVM target"),
    ({"devices": {"rpi5": {"hw": "arm-cortex-a76-4c"}}}, "rpi5"),
    ({"devices": {"rpi5": "arm-cortex-a76-4c"}, "extra": 1}, "unknown field"),
    ({"tracker": "nohost", "devices": {}}, "HOST:PORT"),
])
def test_remote_config_errors_name_the_entry(data, message):
    with pytest.raises(RemoteConfigError, match=message):
        remote_config_from_dict(data)


def test_tracker_address_and_default_config():
    assert parse_tracker("127.0.0.1:9190") == ("127.0.0.1", 9190)
    for bad in ("127.0.0.1", ":9190", "host:abc", "host:70000"):
        with pytest.raises(RemoteConfigError):
            parse_tracker(bad)
    config = default_remote_config(["arm-cortex-a76-4c", "rpi5"])
    assert list(config.devices) == ["arm-cortex-a76-4c"]


# --- a real tracker ----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the server's forked session dies with it
    process.wait(10)


@pytest.fixture
def tracker(tmp_path):
    port = _free_port()
    with open(tmp_path / "tracker.log", "w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
             "--port", str(port), "--port-end", str(port + 1), "--silent"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        _kill(process)


@pytest.fixture
def servers(tracker, tmp_path):
    """start(key) -> Popen of an RPC server registered under `key` (killed at teardown)."""
    from profiles.rpc import tracker_status

    started: list[subprocess.Popen] = []

    def start(*keys: str) -> list[subprocess.Popen]:
        procs = []
        for key in keys:
            port = _free_port()
            with open(tmp_path / f"server-{key}-{port}.log", "w") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", tracker,
                     "--key", key, "--host", "127.0.0.1", "--port", str(port),
                     "--port-end", str(port + 1), "--silent"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            started.append(proc)
            procs.append(proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = tracker_status(tracker)
            if all(status.servers.get(k, 0) >= keys.count(k) for k in keys):
                return procs
            time.sleep(0.3)
        raise TimeoutError(f"servers {keys} did not register with the tracker")

    yield start
    for proc in started:
        _kill(proc)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("PLACEMENT_CACHE_DIR", str(root))
    return root


@pytest.fixture
def tiny_pieces(tmp_path):
    from test_tuning import two_kernel_model

    from profiles.profiler import PieceSource

    a = two_kernel_model(tmp_path / "a.onnx", n=64, m=32)
    b = two_kernel_model(tmp_path / "b.onnx", n=48, m=16)
    return [PieceSource(piece="alpha", onnx_path=a, input_shapes={"x": [1, 64]}),
            PieceSource(piece="beta", onnx_path=b, input_shapes={"x": [1, 48]})]


def test_round_trip_on_a_tracker_device(tracker, servers, cache_dir, tiny_pieces):
    from profiles.hardware import local_hardware
    from profiles.rpc import cached_remote_rows, measure_remote, tracker_status

    local = local_hardware().name
    servers("fake-rpi5")
    status = tracker_status(tracker)
    assert status.servers == {"fake-rpi5": 1} and status.free["fake-rpi5"] == 1
    config = remote_config_from_dict({"fake-rpi5": local, "absent-key": local})
    events = []
    report = measure_remote(tiny_pieces[:1], tracker, config, on_progress=events.append)

    table = report.table
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["piece"], row["hardware"], row["runtime"], row["source"]) == (
        "alpha", local, "tvm", "measured-rpc")
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"]
    assert row["memory_mb"] > 0
    m = report.measurements[("alpha", local, "tvm")]
    assert m.n_samples >= 5 and m.runs_per_sample >= 1
    steps = [e.step for e in events]
    assert steps.index("compile") < steps.index("upload") < steps.index("measure") < steps.index(
        "measured")
    # a key without a server is reported, not fatal
    assert [p.error_type for p in report.problems] == ["NoDevice"]
    assert "absent-key" in report.problems[0].message

    # the row is cached: a second run measures nothing, and the profiler's provider sees it
    again = measure_remote(tiny_pieces[:1], tracker, config, on_progress=events.append)
    assert events[-1].step == "cached" and len(again.table) == 1
    assert again.table.iloc[0]["latency_ms_p50"] == row["latency_ms_p50"]
    cached = cached_remote_rows(tiny_pieces[:1], [local])
    assert len(cached) == 1 and cached[0]["source"] == "measured-rpc"


def test_a_device_killed_mid_run_is_reported_and_the_other_rows_are_kept(
        tracker, servers, cache_dir, tiny_pieces):
    from profiles.hardware import local_hardware
    from profiles.rpc import cached_remote_rows, measure_remote

    local = local_hardware().name
    other = "x86-zen4-1c" if local != "x86-zen4-1c" else "x86-zen4-2c"
    procs = dict(zip(("fake-a", "fake-b"), servers("fake-a", "fake-b")))
    config = remote_config_from_dict({"fake-a": local, "fake-b": other})
    killed = []

    def kill_b_when_it_starts_timing(event):
        if event.key == "fake-b" and event.step == "measure" and not killed:
            killed.append(event.piece)
            _kill(procs["fake-b"])

    report = measure_remote(tiny_pieces, tracker, config, runtimes=("tvm",),
                            on_progress=kill_b_when_it_starts_timing)
    assert killed
    kinds = {(p.hardware, p.error_type) for p in report.problems}
    assert (other, "DeviceLost") in kinds
    lost = [p for p in report.problems if p.error_type == "DeviceLost"][0]
    assert "fake-b" in lost.message and lost.piece == killed[0]
    # every job of fake-b is accounted for: measured before the kill, lost, or not run
    b_rows = report.table[report.table["hardware"] == other]
    b_problems = [p for p in report.problems if p.hardware == other]
    assert len(b_rows) + len(b_problems) == 2
    # fake-a's rows are all there, and already in the cache
    a_rows = report.table[report.table["hardware"] == local]
    assert sorted(a_rows["piece"]) == ["alpha", "beta"]
    assert set(a_rows["source"]) == {"measured-rpc"}
    assert len(cached_remote_rows(tiny_pieces, [local])) == 2


def test_cli_profile_with_a_tracker(tracker, servers, cache_dir, tiny_pieces, tmp_path):
    import json

    from typer.testing import CliRunner

    from placement.cli import app
    from profiles.hardware import local_hardware

    servers("fake-rpi5")
    local = local_hardware().name
    spec = tmp_path / "spec.yaml"
    write_single_model_spec(spec, app="rpc-app", model="alpha", onnx_path=tiny_pieces[0].onnx_path)
    remote = tmp_path / "remote.yaml"
    remote.write_text(f"tracker: {tracker}\ndevices:\n  fake-rpi5: {local}\n")
    result = CliRunner().invoke(app, ["profile", str(spec), "--remote-config", str(remote),
                                      "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):])
    rpc_rows = [r for r in rows if r["source"] == "measured-rpc"]
    assert [(r["piece"], r["hardware"], r["runtime"]) for r in rpc_rows] == [("alpha", local, "tvm")]

    bad = CliRunner().invoke(app, ["profile", str(spec), "--tracker", "127.0.0.1:1", "--json"])
    assert bad.exit_code != 0 and "cannot reach" in str(bad.exception)


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None,
                    reason="aarch64-linux-gnu-gcc missing (apt-get install gcc-aarch64-linux-gnu)")
def test_cross_compiling_for_aarch64_gives_an_arm64_elf(tmp_path, cache_dir):
    import onnx
    from test_tuning import two_kernel_model

    from profiles.hardware import get_hardware
    from profiles.rpc import compile_for_device, compiler_for

    hw = get_hardware("arm-cortex-a76-4c")
    assert compiler_for(hw) == "aarch64-linux-gnu-gcc"
    model = onnx.load(str(two_kernel_model(tmp_path / "m.onnx")))
    lib = compile_for_device(model, {"x": [1, 64]}, hw, tmp_path / "lib",
                             cc=compiler_for(hw))
    with open(lib["lib"], "rb") as f:
        header = f.read(20)
    assert header[:4] == b"\x7fELF"
    assert header[4] == 2                                  # ELFCLASS64
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    assert lib["target"]["mtriple"] == "aarch64-linux-gnu" and lib["memory_mb"] > 0


def test_missing_cross_compiler_is_named():
    from profiles.rpc import check_compiler

    with pytest.raises(FileNotFoundError, match="no-such-gcc"):
        check_compiler("no-such-gcc")


@pytest.mark.slow
def test_tuned_library_measured_on_a_tracker_device(tracker, servers, cache_dir, tiny_pieces):
    from profiles.hardware import local_hardware
    from profiles.rpc import measure_remote
    from profiles.tuning import tune_piece

    local = local_hardware().name
    tune_piece(tiny_pieces[0], None, 60, trials_per_task=2, measure=False)
    servers("fake-rpi5")
    report = measure_remote(tiny_pieces[:1], tracker, remote_config_from_dict({"fake-rpi5": local}))
    assert sorted(report.table["runtime"]) == ["tvm", "tvm-tuned"]
    assert set(report.table["source"]) == {"measured-rpc"}
    assert not report.problems
