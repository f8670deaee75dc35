"""One worker process: loads its stages with the export bundle's runner (`edge_runner.Piece`:
ONNX Runtime, OpenVINO or a TVM library), then serves its queue until told to stop or its parent
is gone. A site device's process serves every stage placed on it from one queue, first come first
served; a cloud pool's replicas share one queue. A batched stage waits for `batch` requests (or
its fill deadline) and runs them as one call.

Messages in: (request id, stage, {name: array}, enqueued at), ("probe", sent at, {name: array})
or None (stop).
Messages out: ("ready", worker, pid) once loaded and warmed up, then per request
("done", worker, request id, stage, enqueued, started, ended, busy_ms, inbound_ms, core_wait_ms, held_ms,
outputs), and per probe
("probe", worker, sent at, the same arrays): an identity stage answered at once, so the
dispatcher can time its own hop there and back (docs/verify.md, "Serving overhead").
inbound_ms: from the dispatcher's put to this worker's get, when this worker was idle at the put
(None when it was busy: the message then waited for it, not for the queue).
core_wait_ms: how long this worker's thread was ready to run but waiting for a core during the
call (Linux schedstat; None elsewhere): the machine's cores were short, not the plan's queue.
held_ms: how long the call held this worker (batch 1): from taking it up to handing its outputs
on — the runtime call plus the runner's handling (reading the request off the queue when it was
waiting for this worker, fitting its inputs, a hand-over inside the worker); None for a batch."""

from __future__ import annotations

import os
import queue
import signal
import time
from pathlib import Path

import numpy as np


def per_request_shape(shape: list[int], batch: int) -> tuple[int, ...]:
    dims = [d if d > 0 else 1 for d in shape]
    if batch > 1 and dims and dims[0] == batch:
        dims[0] = 1
    return tuple(dims)


_DEFAULTS: dict = {}
SCHEDSTAT = Path("/proc/thread-self/schedstat")


def core_wait_ns() -> int | None:
    """Nanoseconds this thread has spent runnable but waiting for a core (schedstat's second
    field: the scheduler's run-queue delay), or None where the kernel does not say."""
    try:
        return int(SCHEDSTAT.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def default_tensor(desc: dict, batch: int = 1) -> np.ndarray:
    """A stand-in input of the stage's own shape, made once per (shape, dtype) and reused: made
    per request it cost 0.3-0.6 ms of a [32, 1024] draw inside the measured wait, a harness cost
    the plan does not have (nobody writes to it: runtimes read their inputs)."""
    shape = per_request_shape(desc["shape"], batch)
    dtype = np.dtype(desc["dtype"])
    key = (shape, dtype.str)
    if key not in _DEFAULTS:
        _DEFAULTS[key] = (np.random.default_rng(0).standard_normal(shape).astype(dtype) if dtype.kind == "f"
                          else np.zeros(shape, dtype=dtype))
    return _DEFAULTS[key]


def feeds_for(io: dict, batch: int, arrived: dict) -> dict:
    """The stage's inputs from what arrived: by name, else by position; a tensor whose shape or
    dtype does not fit the stage is replaced by one of the stage's own input shape."""
    values = list(arrived.values())
    feeds = {}
    for i, desc in enumerate(io["inputs"]):
        value = arrived.get(desc["name"], values[i] if i < len(values) else None)
        want = per_request_shape(desc["shape"], batch)
        if not isinstance(value, np.ndarray) or value.shape != want or value.dtype.name != desc["dtype"]:
            value = default_tensor(desc, batch)
        feeds[desc["name"]] = value
    return feeds


class _Stage:
    def __init__(self, folder: Path, spec: dict):
        from placement.export.edge_runner import Piece

        self.piece = Piece(folder, spec)
        self.io = self.piece.io
        self.batch = int(spec.get("batch", 1))
        self.fill_s = float(spec.get("fill_deadline_s", 0.05))
        self.pending: list = []
        self.local_next: list[str] = list(spec.get("local_next", []))
        self.only_local: bool = bool(spec.get("only_local", False))  # every output stays here

    def run(self, items: list) -> tuple[float, float, list[dict]]:
        """Run `items` [(rid, feeds, enqueued, inbound_ms, taken)] as one call: start, end, outputs per item."""
        if self.batch > 1:
            feeds = {}
            for desc in self.io["inputs"]:
                rows = [item[1][desc["name"]] for item in items]
                rows += [rows[-1]] * (self.batch - len(rows))
                feeds[desc["name"]] = np.concatenate(rows, axis=0)
        else:
            feeds = items[0][1]
        start = time.monotonic()
        out = self.piece(feeds)
        end = time.monotonic()
        if self.batch == 1:
            return start, end, [out]
        per = [{k: (v[i:i + 1] if v.ndim and v.shape[0] == self.batch else v) for k, v in out.items()}
               for i in range(len(items))]
        return start, end, per


def serve(worker: str, folder: str, specs: dict, inq, outq, parent_pid: int) -> None:
    """The worker's main loop (the target of its process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers itself
    stages = {name: _Stage(Path(folder), spec) for name, spec in specs.items()}
    for stage in stages.values():  # warm up: the first call pays for allocation
        for _ in range(3):
            stage.run([(0, feeds_for(stage.io, stage.batch, {}), 0.0, None, 0.0)])
    outq.put(("ready", worker, os.getpid()))
    free_since = time.monotonic()  # when this worker last finished a call
    while True:
        deadline = _next_deadline(stages)
        try:
            msg = inq.get(timeout=0.5 if deadline is None else max(0.0, deadline - time.monotonic()))
            got = time.monotonic()
        except queue.Empty:
            msg = False
        if msg is None:
            return
        if os.getppid() != parent_pid:
            return  # the parent is gone: nobody reads what this worker would send
        if msg and msg[0] == "probe":
            outq.put(("probe", worker, msg[1], msg[2]))
        elif msg:
            rid, name, arrived, enqueued = msg
            stage = stages[name]
            idle = enqueued >= free_since
            inbound = (got - enqueued) * 1000.0 if idle else None
            # an idle worker takes a request up when it gets it (the way there is the serving
            # overhead's); a busy one when it is free again (reading it off the queue is its work)
            taken = got if idle else free_since
            stage.pending.append((rid, feeds_for(stage.io, stage.batch, arrived), enqueued, inbound, taken))
        for name, stage in stages.items():
            due = stage.pending and (len(stage.pending) >= stage.batch
                                     or time.monotonic() >= stage.pending[0][2] + stage.fill_s)
            if due:
                items, stage.pending = stage.pending[:stage.batch], stage.pending[stage.batch:]
                _run_and_report(worker, stages, name, items, outq)
                free_since = time.monotonic()


def _run_and_report(worker: str, stages: dict, name: str, items: list, outq) -> None:
    """Run `items` on stage `name`, report each, and run the stages it hands to inside this
    worker at once (the next piece on the same device, as the edge runner does)."""
    stage = stages[name]
    waited = core_wait_ns()
    start, end, outs = stage.run(items)
    after = core_wait_ns()
    core_wait = None if waited is None or after is None else (after - waited) / 1e6
    for i, ((rid, _, enqueued, inbound, taken), out) in enumerate(zip(items, outs)):
        busy = (end - start) * 1000.0 if i == 0 else 0.0
        held = (time.monotonic() - taken) * 1000.0 if stage.batch == 1 else None
        local = stage.local_next
        outq.put(("done", worker, rid, name, enqueued, start, end, busy, inbound,
                  core_wait if i == 0 else 0.0, held, {} if stage.only_local else out))
        for nxt in local:
            now = time.monotonic()
            _run_and_report(worker, stages, nxt, [(rid, feeds_for(stages[nxt].io, 1, out), now, None, now)], outq)


def _next_deadline(stages: dict) -> float | None:
    times = [s.pending[0][2] + s.fill_s for s in stages.values() if s.pending]
    return min(times) if times else None
