"""Measure pieces on remote devices through TVM's RPC tracker (rows with source `measured-rpc`).

`measure_remote(pieces, "host:port", remote_config)`:

1. asks the tracker which keys have servers and how many are free (`tracker_status`);
2. makes one job per (piece, device key, runtime): `tvm` always, `tvm-tuned` where the key's
   hardware class has a tuning database (`profiles.tuning`). A job whose row is cached (same
   model, shapes, class, runtime, versions, `MeasureConfig`; for `tvm-tuned` also the same
   number of records in the database) is not measured again;
3. compiles each job's library for the device's target in a child process, one after another
   (2 cores), linking with the class's compiler (`profiles.rpc_compile`). Libraries are cached
   on disk by content (`cache_root()/rpc-libs/`);
4. meanwhile one thread per free server of each key holds one tracker session and takes that
   key's compiled jobs: upload, load, `time_evaluator` on the device with the `MeasureConfig`
   protocol (`profiles.tvm_compile.time_vm`), and caches each row as soon as it is measured;
5. a device that disappears mid-run (the session breaks) becomes a `ProfileProblem`
   ("DeviceLost"); its job goes to another live session of the same key once, and the key's jobs
   that no session is left to run become problems too ("NoDevice"). Every other row is kept.

This layer prints nothing: `on_progress(RemoteProgress)` reports each step (it is called from
worker threads). The RPC client runs in this process (a crash in a remote session is the
server's); compiling, which can crash, runs in children. The cached rows come back to the
profiler through `profiles.remote_rows.cached_remote_rows`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from profiles.cache import ProfileCache
from profiles.hardware import HardwareClass, get_hardware
from profiles.measure import MeasureConfig, Measurement
from profiles.onnx_prep import input_specs, model_digest, prepare_onnx, random_feeds
from profiles.paths import atomic_write_text, cache_root
from profiles.pieces import ProfileProblem
from profiles.remote import RemoteConfig, RemoteDevice, default_remote_config, parse_tracker
from profiles.remote_rows import (  # noqa: F401 - cached_remote_rows: re-exported
    MEASURED_RPC,
    REMOTE_RUNTIMES,
    cached_remote_rows,
    remote_profile_key,
)
from profiles.rows import batch_of, measured_row, rows_table
from profiles.rows import merge_rows as merge_measured_rows  # noqa: F401 - re-exported
from profiles.rpc_compile import (  # noqa: F401 - check_compiler ... export_library: re-exported
    AARCH64_CC,
    check_compiler,
    compile_for_device,
    compiler_for,
    export_library,
)
from profiles.table import empty_profile_table
from profiles.tuning_db import TuningDatabase
from profiles.tvm_adapter import tvm_version
from profiles.tvm_compile import time_vm

logger = logging.getLogger(__name__)


class RpcError(RuntimeError):
    """The tracker cannot be reached or answers nonsense."""


# --- the tracker -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerStatus:
    """Servers per key (`servers`), how many are free now (`free`), requests waiting (`pending`)."""

    servers: dict[str, int]
    free: dict[str, int]
    pending: dict[str, int]


def tracker_status(tracker: str, connect_timeout_s: float = 5.0) -> TrackerStatus:
    """The tracker's summary: which keys have servers, and how many are free."""
    import socket

    from tvm import rpc

    host, port = parse_tracker(tracker)
    try:  # TVM's own connect retries for a minute; a tracker that is not there fails now
        socket.create_connection((host, port), timeout=connect_timeout_s).close()
    except OSError as exc:
        raise RpcError(f"cannot reach the RPC tracker at {tracker}: {exc}") from None
    try:
        session = rpc.connect_tracker(host, port)
    except (OSError, RuntimeError) as exc:
        raise RpcError(f"cannot reach the RPC tracker at {tracker}: {exc}") from None
    try:
        summary = session.summary()
    except (OSError, RuntimeError, ValueError) as exc:
        raise RpcError(f"RPC tracker at {tracker} did not answer its summary: {exc}") from None
    finally:
        session.close()
    servers: dict[str, int] = {}
    for item in summary.get("server_info", []):
        key = str(item.get("key", "")).split(":", 1)[-1]  # "server:rpi5" -> "rpi5"
        servers[key] = servers.get(key, 0) + 1
    queue_info = summary.get("queue_info", {}) or {}
    # a key appears in queue_info only once someone asked for it: until then all are free
    free = {k: int(queue_info[k].get("free", 0)) if k in queue_info else n
            for k, n in servers.items()}
    pending = {k: int(v.get("pending", 0)) for k, v in queue_info.items()}
    return TrackerStatus(servers=servers, free=free, pending=pending)


# --- compiling for a device --------------------------------------------------------------------

# --- jobs, progress, report --------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteProgress:
    """One step of `measure_remote`: `done` of `total` jobs finished (measured, cached or failed).

    step: "compile", "compiled", "cached", "session" (a session opened on `server`), "upload",
    "measure" (timing starts on the device), "measured", "failed", "device-lost"."""

    piece: str
    hardware: str
    key: str
    runtime: str
    step: str
    done: int
    total: int
    server: str = ""


@dataclass
class RemoteReport:
    """The measured-rpc rows, what failed, and each row's full measurement."""

    table: pd.DataFrame
    problems: list = field(default_factory=list)
    measurements: dict[tuple[str, str, str], Measurement] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)  # key -> sessions used


@dataclass
class _Job:
    source: object           # PieceSource
    device: RemoteDevice
    hardware: HardwareClass
    runtime: str
    cache_key: str
    tuning_records: int | None
    lib: dict | None = None
    attempts: int = 0


def _lib_key(digest: str, source, hardware: HardwareClass, runtime: str, cc: str | None,
             records: int | None) -> str:
    fields = {"model": digest, "shapes": {k: list(v) for k, v in sorted(source.input_shapes.items())},
              "target": hardware.tvm_target, "runtime": runtime, "cc": cc, "records": records,
              "tvm": tvm_version(), "format": 1}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _problem(piece: str, runtime: str, hardware: str, error_type: str, message: str):
    return ProfileProblem(piece, runtime, hardware, error_type, message)


def _row(job: _Job, m: Measurement) -> dict:
    return measured_row(job.source.piece, job.hardware.name, job.runtime,
                        batch_of(job.source.input_shapes), m, source=MEASURED_RPC,
                        tvm_version=tvm_version())


# --- the run ----------------------------------------------------------------------------------

def measure_remote(
    pieces: Sequence,
    tracker: str,
    remote_config: RemoteConfig | None = None,
    *,
    runtimes: Sequence[str] = REMOTE_RUNTIMES,
    config: MeasureConfig | None = None,
    cache=None,
    on_progress: Callable[[RemoteProgress], None] | None = None,
) -> RemoteReport:
    """Measure every piece on every device key of the tracker that the config maps to a class.

    See the module docstring. Keys in the config without a server on the tracker, a missing
    cross compiler, a failed compile and lost devices become `report.problems`; the rows that
    were measured are in `report.table` and already in the cache. Raises `RpcError` when the
    tracker cannot be reached, `OnnxPrepError` for a model that cannot be prepared."""
    unknown = [r for r in runtimes if r not in REMOTE_RUNTIMES]
    if unknown:
        raise ValueError(f"cannot measure runtime(s) {unknown} remotely; "
                         f"known: {', '.join(REMOTE_RUNTIMES)}")
    config = config or MeasureConfig()
    cache = cache if cache is not None else ProfileCache()
    status = tracker_status(tracker)
    remote_config = remote_config if remote_config is not None and remote_config.devices else (
        default_remote_config(status.servers))
    report = RemoteReport(table=empty_profile_table())
    digests = {s.piece: model_digest(s.onnx_path) for s in pieces}

    devices: list[RemoteDevice] = []
    for key, device in remote_config.devices.items():
        if status.servers.get(key, 0) == 0:
            for source in pieces:
                report.problems.append(_problem(
                    source.piece, "*", device.hardware, "NoDevice",
                    f"no RPC server registered under key {key!r} at {tracker}; "
                    f"known keys: {', '.join(sorted(status.servers)) or 'none'}"))
            continue
        devices.append(device)

    jobs: list[_Job] = []
    rows: list[dict] = []
    for device in devices:
        hw = get_hardware(device.hardware)
        db = TuningDatabase.for_hardware(hw.name)
        for source in pieces:
            for runtime in runtimes:
                records = None
                if runtime == "tvm-tuned":
                    if not db.exists():
                        continue
                    records = db.record_count()
                key = remote_profile_key(source, hw.name, runtime, config,
                                         digests[source.piece])
                jobs.append(_Job(source, device, hw, runtime, key, records))

    total = len(jobs)
    lock = threading.Lock()
    counter = {"done": 0}

    def progress(job: _Job, step: str, server: str = "", finished: bool = False) -> None:
        with lock:
            if finished:
                counter["done"] += 1
            done = counter["done"]
        if on_progress is not None:
            on_progress(RemoteProgress(job.source.piece, job.hardware.name, job.device.key,
                                       job.runtime, step, done, total, server))

    def add_problem(problem) -> None:
        with lock:
            report.problems.append(problem)

    # cached rows first: nothing to compile or run for them
    pending: list[_Job] = []
    for job in jobs:
        entry = cache.get(job.cache_key)
        if (entry and isinstance(entry.get("row"), dict)
                and entry.get("tuning_records") == job.tuning_records):
            rows.append({**entry["row"], "piece": job.source.piece})
            report.measurements[(job.source.piece, job.hardware.name, job.runtime)] = (
                Measurement.model_validate(entry["measurement"]))
            progress(job, "cached", finished=True)
        else:
            pending.append(job)

    by_key: dict[str, list[_Job]] = {}
    for job in pending:
        by_key.setdefault(job.device.key, []).append(job)
    run = _Run(tracker=tracker, config=config, cache=cache, rows=rows, report=report,
               progress=progress, add_problem=add_problem)
    threads: list[threading.Thread] = []
    for key, key_jobs in by_key.items():
        n = max(1, min(status.free.get(key, 0), len(key_jobs)))
        run.queues[key] = deque()
        run.live[key] = n
        report.devices[key] = n
        for i in range(n):
            t = threading.Thread(target=run.worker, args=(key, i), name=f"rpc-{key}-{i}",
                                 daemon=True)
            threads.append(t)
            t.start()

    # compile in this thread (one child at a time) and hand each library to its key's sessions
    prepared: dict[str, object] = {}
    try:
        for job in pending:
            if not run.alive(job.device.key):
                run.no_device(job)
                continue
            try:
                job.lib = _compiled_library(job, digests[job.source.piece], prepared, config,
                                            lambda step, j=job: progress(j, step))
            except Exception as exc:  # noqa: BLE001 - one bad compile must not stop the batch
                logger.info("%s on %s: compile failed: %s", job.source.piece, job.device.key, exc)
                add_problem(_problem(job.source.piece, job.runtime, job.hardware.name,
                                     type(exc).__name__, f"{job.device.key}: {exc}"))
                progress(job, "failed", finished=True)
                continue
            run.put(job)
    finally:
        run.finish()
        for t in threads:
            t.join()
    for job in run.leftovers():  # jobs of a key whose every session was lost
        run.no_device(job)

    report.table = rows_table(rows)
    return report


def _compiled_library(job: _Job, digest: str, prepared: dict, config: MeasureConfig,
                      progress: Callable[[str], None]) -> dict:
    """The job's library from the on-disk library cache, or compiled now (in a child)."""
    cc = compiler_for(job.hardware, job.device.cc)
    lib_key = _lib_key(digest, job.source, job.hardware, job.runtime, cc, job.tuning_records)
    lib_dir = cache_root() / "rpc-libs" / lib_key
    meta_path = lib_dir / "lib.json"
    if meta_path.is_file() and (lib_dir / "model.so").is_file():
        try:
            return json.loads(meta_path.read_text())
        except ValueError:
            pass
    progress("compile")
    source = job.source
    if source.piece not in prepared:
        prepared[source.piece] = prepare_onnx(source.onnx_path, source.input_shapes)
    database = (TuningDatabase.for_hardware(job.hardware.name).directory
                if job.runtime == "tvm-tuned" else None)
    lib = compile_for_device(prepared[source.piece], source.input_shapes, job.hardware, lib_dir,
                             cc=cc, database=database, timeout_s=config.timeout_s)
    lib["inputs"] = input_specs(prepared[source.piece])
    atomic_write_text(meta_path, json.dumps(lib, indent=1) + "\n")
    progress("compiled")
    return lib


_LOST_MARKERS = ("socket", "kshutdown", "connection", "broken pipe", "rpc session",
                 "timed out", "timeout")


def _device_lost(remote, exc: BaseException) -> bool:
    """Whether an error means the session (the device) is gone rather than this job failing.

    A broken socket says so in the message; otherwise a cheap remote call must succeed."""
    text = str(exc).lower()
    if any(marker in text for marker in _LOST_MARKERS):
        return True
    try:
        remote.get_function("tvm.rpc.server.workpath")("probe")
        return False
    except Exception:  # noqa: BLE001 - any failure means the session is gone
        return True


class _Run:
    """What the session threads of one `measure_remote` share: per-key job queues, how many
    sessions of each key are still alive, and whether compiling has finished."""

    def __init__(self, *, tracker, config, cache, rows, report, progress, add_problem):
        self.tracker, self.config, self.cache = tracker, config, cache
        self.rows, self.report = rows, report
        self.progress, self.add_problem = progress, add_problem
        self.queues: dict[str, deque] = {}
        self.live: dict[str, int] = {}
        self.cond = threading.Condition()
        self.done = False

    def alive(self, key: str) -> bool:
        with self.cond:
            return self.live.get(key, 0) > 0

    def put(self, job: _Job) -> None:
        with self.cond:
            self.queues[job.device.key].append(job)
            self.cond.notify_all()

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def next_job(self, key: str) -> _Job | None:
        """The key's next job; None (and this session no longer counted) when none will come."""
        with self.cond:
            while not self.queues[key] and not self.done:
                self.cond.wait(0.5)
            if self.queues[key]:
                return self.queues[key].popleft()
            self.live[key] -= 1
            return None

    def leftovers(self) -> list[_Job]:
        with self.cond:
            jobs = [j for q in self.queues.values() for j in q]
            for q in self.queues.values():
                q.clear()
            return jobs

    def no_device(self, job: _Job) -> None:
        key = job.device.key
        self.add_problem(_problem(job.source.piece, job.runtime, job.hardware.name, "NoDevice",
                                  f"{key}: not measured: every device of key {key!r} was lost"))
        self.progress(job, "failed", finished=True)

    def lose_device(self, job: _Job, message: str) -> None:
        """A session broke: report it; its job goes to another live session of the key, once."""
        key = job.device.key
        self.add_problem(_problem(job.source.piece, job.runtime, job.hardware.name,
                                  "DeviceLost", f"{key}: {message}"))
        self.progress(job, "device-lost")
        job.attempts += 1
        with self.cond:
            self.live[key] -= 1
            retry = self.live[key] > 0 and job.attempts < 2
            if retry:
                self.queues[key].append(job)
                self.cond.notify_all()
        if not retry:
            self.progress(job, "failed", finished=True)

    def worker(self, key: str, index: int) -> None:
        """One tracker session on one device of `key`: measure jobs until none are left."""
        from tvm import rpc

        job = self.next_job(key)
        if job is None:
            return
        host, port = parse_tracker(self.tracker)
        remote = None
        try:
            tracker_session = rpc.connect_tracker(host, port)
            remote = tracker_session.request(key, session_timeout=job.device.session_timeout_s,
                                             max_retry=2)
            tracker_session.close()
        except Exception as exc:  # noqa: BLE001 - no session: this device is gone
            self.lose_device(job, f"could not open a session: {exc}")
            return
        server = f"{key}#{index}"
        self.progress(job, "session", server)
        uploaded: set[str] = set()
        try:
            while job is not None:
                try:
                    measurement = _measure_job(remote, job, self.config, uploaded,
                                               lambda step, j=job: self.progress(j, step, server))
                except Exception as exc:  # noqa: BLE001 - sort out: the device or the job?
                    if _device_lost(remote, exc):
                        first = (str(exc).strip().splitlines() or [""])[0][:200]
                        self.lose_device(job, f"device disappeared while measuring "
                                              f"{job.source.piece} ({type(exc).__name__}: {first})")
                        return
                    self.add_problem(_problem(job.source.piece, job.runtime, job.hardware.name,
                                              "RemoteRunError",
                                              f"{key}: {type(exc).__name__}: {exc}"))
                    self.progress(job, "failed", server, finished=True)
                else:
                    self._keep(job, measurement, key)
                    self.progress(job, "measured", server, finished=True)
                job = self.next_job(key)
        finally:
            del remote  # closes the session (the server frees the device)

    def _keep(self, job: _Job, measurement: Measurement, key: str) -> None:
        row = _row(job, measurement)
        self.cache.put(job.cache_key, {"row": row, "measurement": measurement.model_dump(),
                                       "tuning_records": job.tuning_records, "key": key})
        with self.cond:
            self.rows.append(row)
            self.report.measurements[(job.source.piece, job.hardware.name, job.runtime)] = (
                measurement)


def _measure_job(remote, job: _Job, config: MeasureConfig, uploaded: set,
                 progress: Callable[[str], None]) -> Measurement:
    """Upload the job's library (once per session), load it, time it on the device."""
    import tvm
    from tvm import relax

    lib = job.lib or {}
    lib_path = Path(lib["lib"])
    name = f"{lib_path.parent.name[:16]}.so"
    if name not in uploaded:
        progress("upload")
        remote.upload(str(lib_path), target=name)
        uploaded.add(name)
    dev = remote.cpu(0)
    vm = relax.VirtualMachine(remote.load_module(name), dev)
    inputs = lib["inputs"]
    feeds = random_feeds(inputs, config.seed)
    args = [tvm.runtime.tensor(feeds[n], dev) for n in inputs]
    progress("measure")
    samples_ms, runs, measure_s = time_vm(vm, dev, args, config)
    return Measurement.from_samples(
        job.runtime, samples_ms, memory_mb=lib["memory_mb"], memory_method="tvm-plan",
        runs_per_sample=runs, measure_s=measure_s, compile_s=lib.get("compile_s"),
        target=lib.get("target"))
