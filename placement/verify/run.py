"""The bounded run: start the workers, feed them arrivals, carry each piece's outputs to the
next piece (delayed by the link's bandwidth and one-way delay where it crosses locations), record
every request's times, stop by itself, and leave no process behind (a crashed worker ends the
run and is reported; Ctrl-C in the parent stops and reaps every worker before it propagates)."""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing as mp
import queue
import select
import time
from dataclasses import dataclass, field

import numpy as np

from placement.problem.network import transfer_ms
from placement.verify.topology import SINK, SOURCE, Topology
from placement.verify.worker import default_tensor, serve

READY_TIMEOUT_S = 180.0
PROBES = 200             # timed hops per worker group before the run (after PROBE_WARMUP untimed)
PROBE_WARMUP = 10
PROBE_BUDGET_S = 1.0     # all groups together; a group gets its share, fewer probes if slow


@dataclass
class StageRecord:
    waits_ms: list = field(default_factory=list)
    computes_ms: list = field(default_factory=list)
    returns_ms: list = field(default_factory=list)  # the worker's "done" to its receipt here
    inbounds_ms: list = field(default_factory=list)  # the put here to the worker's get (worker idle)
    busy_ms: float = 0.0
    core_waits_ms: list = field(default_factory=list)  # per call: runnable, waiting for a core
    helds_ms: list = field(default_factory=list)       # per call: the call plus the runner's handling


@dataclass
class RunRecord:
    started: float = 0.0
    duration_s: float = 0.0
    span_s: float = 0.0          # arrivals plus the drain: what utilisation is measured over
    stages: dict = field(default_factory=dict)
    latencies_ms: list = field(default_factory=list)
    sent: int = 0
    unfinished: int = 0
    link_bytes: dict = field(default_factory=dict)     # (src, dst) -> bytes of the last message
    link_delay_ms: dict = field(default_factory=dict)  # (src, dst) -> emulated delay of it
    failure: str | None = None
    worker_pids: list = field(default_factory=list)
    hop_ms: dict = field(default_factory=dict)         # group -> probe round trips (ms)
    probe_s: float = 0.0                               # how long the probes took
    late_ms: list = field(default_factory=list)        # how late the dispatcher handled each timed event
    dispatcher_cpu_s: float = 0.0                      # CPU the dispatcher process used during the run
    calls: list = field(default_factory=list)          # (worker, stage, start, end) of every call


def arrival_times(rate_per_site: float, sites: int, ca2: float, duration_s: float, seed: int = 0) -> list[float]:
    """Arrival offsets (s) of `sites` independent streams: gaps with mean 1/rate and squared
    coefficient of variation `ca2` (0: periodic with a random phase; 1: Poisson; gamma else)."""
    rng = np.random.default_rng(seed)
    mean = 1.0 / rate_per_site
    times: list[float] = []
    for _ in range(sites):
        if ca2 <= 1e-9:
            t = rng.uniform(0.0, mean)
            times.extend(np.arange(t, duration_s, mean).tolist())
            continue
        shape = 1.0 / ca2
        n = int(duration_s / mean * 1.5) + 20
        gaps = rng.gamma(shape, mean / shape, size=n)
        t = np.cumsum(gaps) - gaps[0] * rng.uniform()
        times.extend(t[(t >= 0) & (t < duration_s)].tolist())
    return sorted(times)


def _nbytes(tensors: dict) -> int:
    return int(sum(getattr(v, "nbytes", 0) for v in tensors.values()))


PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size


def _roomy(q):
    """`q` with its pipe grown from 64 KiB to 1 MiB where Linux allows: a message larger than the
    pipe (a [32, 1024] float tensor is 128 KiB) can only be written while its reader reads, so a
    worker taking the next request had to wait for the dispatcher's feeder thread to get a core
    and write the rest (0.7-1 ms per request on 2 busy cores, measured: 8 % more busy time per
    replica near the cap, which the plan does not have)."""
    import fcntl

    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        with contextlib.suppress(OSError):  # one pipe: its writing end sets it for both
            fcntl.fcntl(q._writer.fileno(), setsize, PIPE_BYTES)
    return q


class Dispatcher:
    def __init__(self, topology: Topology, specs: dict, folder: str, network, on_event=None):
        self.top, self.specs, self.folder, self.network = topology, specs, folder, network
        self.on_event = on_event or (lambda msg: None)
        self.ctx = mp.get_context("spawn")
        self.outq = _roomy(self.ctx.Queue())
        self.inqs = {g: _roomy(self.ctx.Queue()) for g in topology.groups}
        self.procs: dict[str, mp.Process] = {}
        self.heap: list = []
        self.local: dict[str, set] = {}
        self.seq = 0
        self.record = RunRecord(stages={s: StageRecord() for s in topology.stages})

    # -- processes -------------------------------------------------------------------------

    def start(self) -> None:
        import os

        for g in self.top.groups.values():
            specs = {}
            for s in g.stages:
                local = self.top.local_next(s)
                specs[s] = {**self.specs[s], "local_next": local,
                            "only_local": len(local) == len(self.top.links_from(s))}
            for i in range(g.processes):
                name = f"{g.name}#{i + 1}" if g.processes > 1 else g.name
                proc = self.ctx.Process(target=serve, name=name, daemon=True,
                                        args=(name, self.folder, specs, self.inqs[g.name], self.outq, os.getpid()))
                proc.start()
                self.procs[name] = proc
        self.record.worker_pids = [p.pid for p in self.procs.values()]
        ready, deadline = set(), time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(self.procs):
            if self._dead():
                return
            if time.monotonic() > deadline:
                self.record.failure = f"workers not ready after {READY_TIMEOUT_S:.0f} s"
                return
            try:
                msg = self.outq.get(timeout=0.2)
            except queue.Empty:
                continue
            if msg[0] == "ready":
                ready.add(msg[1])
        self.on_event(f"{len(self.procs)} worker process(es) ready")

    def _dead(self) -> bool:
        for name, proc in self.procs.items():
            if not proc.is_alive():
                code = proc.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
                self.record.failure = f"worker {name} (pid {proc.pid}) {how}"
                return True
        return False

    def stop(self) -> None:
        """Stop every worker: ask, then terminate, then kill; join each."""
        for g, q in self.inqs.items():
            for _ in range(self.top.groups[g].processes):
                with contextlib.suppress(Exception):  # a full or closed queue: terminate below
                    q.put_nowait(None)
        deadline = time.monotonic() + 2.0
        for proc in self.procs.values():
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2.0)
        for q in [self.outq, *self.inqs.values()]:
            q.cancel_join_thread()
            q.close()

    # -- the harness's own hop -------------------------------------------------------------

    def probe(self, probes: int = PROBES, budget_s: float = PROBE_BUDGET_S) -> None:
        """Time this harness's serving overhead per worker visit: one request at a time, the
        dispatcher puts a probe carrying the group's real input tensors on the group's queue, a
        worker hands it straight back (an identity stage) on the shared out-queue, and the
        round trip is what a visit costs beyond its wait in line and its compute. `probes` per
        group after PROBE_WARMUP untimed ones, the groups taking turns, spread evenly over
        `budget_s`: spaced, not back to back, because a process woken from idle answers later
        (here 0.35 ms back to back, 0.6 at 2.4 ms gaps, 0.9 at 10 ms, 1.05 at 50 ms and more)."""
        started = time.monotonic()
        groups = list(self.top.groups.values())
        payloads = {}
        for g in groups:
            stage = g.stages[0]
            io = _io(self.folder, self.specs[stage])
            payloads[g.name] = {d["name"]: default_tensor(d, self.top.stages[stage].batch) for d in io["inputs"]}
        gap = budget_s / ((PROBE_WARMUP + probes) * len(groups))
        due = started
        for n in range(PROBE_WARMUP + probes):
            if n > PROBE_WARMUP and time.monotonic() > started + budget_s:
                break
            for g in groups:
                time.sleep(max(0.0, due - time.monotonic()))
                due += gap
                sent = time.monotonic()
                self.inqs[g.name].put(("probe", sent, payloads[g.name]))
                if not self._await_probe(sent):
                    return
                if n >= PROBE_WARMUP:
                    self.record.hop_ms.setdefault(g.name, []).append((time.monotonic() - sent) * 1000.0)
        self.record.probe_s = time.monotonic() - started
        self.on_event(f"serving overhead: {sum(map(len, self.record.hop_ms.values()))} probe round trip(s) "
                      f"in {self.record.probe_s:.2f} s")

    def _await_probe(self, sent: float) -> bool:
        deadline = sent + 10.0
        while time.monotonic() < deadline:
            try:
                msg = self.outq.get(timeout=0.2)
            except queue.Empty:
                if self._dead():
                    return False
                continue
            if msg[0] == "probe" and msg[2] == sent:
                return True
        self.record.failure = "a worker did not answer the serving-overhead probe within 10 s"
        return False

    # -- the run ---------------------------------------------------------------------------

    def _at(self, when: float, *event) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, event))

    def _send(self, link, rid: int, tensors: dict, now: float) -> None:
        nbytes = _nbytes(tensors)
        delay = 0.0
        if link.planned_ms > 0:  # a link the plan charges: bytes as sent ÷ bandwidth + one-way delay
            delay = transfer_ms(self.network, link.loc_from, link.loc_to, nbytes)
        self.record.link_bytes[(link.src, link.dst)] = nbytes
        self.record.link_delay_ms[(link.src, link.dst)] = delay
        self._at(now + delay / 1000.0, "deliver", rid, link.dst, tensors)

    def run(self, arrivals: list[float], duration_s: float, drain_s: float) -> RunRecord:
        rec = self.record
        entry = {link.dst for link in self.top.links_from(SOURCE)}
        source_tensors = {}
        for stage in entry:
            io = _io(self.folder, self.specs[stage])
            source_tensors.update({d["name"]: default_tensor(d, self.top.stages[stage].batch) for d in io["inputs"]})
        t0 = time.monotonic() + 0.1
        cpu0 = time.process_time()
        rec.started, rec.duration_s = t0, duration_s
        for rid, offset in enumerate(arrivals):
            self._at(t0 + offset, "arrive", rid)
        born: dict[int, float] = {}
        sinks_left: dict[int, int] = {}
        inputs: dict = {}
        end_by = t0 + duration_s + drain_s
        last_check = 0.0
        while True:
            now = time.monotonic()
            while self.heap and self.heap[0][0] <= now:
                when, _, event = heapq.heappop(self.heap)
                if event[0] == "arrive":
                    rid = event[1]
                    born[rid], sinks_left[rid] = now, self.top.sinks
                    rec.sent += 1
                    for link in self.top.links_from(SOURCE):
                        self._send(link, rid, source_tensors, now)
                    continue
                _, rid, dst, tensors = event
                rec.late_ms.append((now - when) * 1000.0)  # a delivery: late is in the latency
                if dst == SINK:
                    sinks_left[rid] -= 1
                    if sinks_left[rid] == 0:
                        rec.latencies_ms.append((now - born.pop(rid)) * 1000.0)
                    continue
                got = inputs.setdefault((rid, dst), {})
                got.update(tensors)
                got["__n"] = got.get("__n", 0) + 1
                if got["__n"] == self.top.fan_in(dst):
                    inputs.pop((rid, dst))
                    got.pop("__n")
                    self.inqs[self.top.stages[dst].group].put((rid, dst, got, time.monotonic()))
            if now - last_check > 0.2:
                last_check = now
                if self._dead():
                    break
            if now > end_by or (now > t0 + duration_s and not born and not self.heap):
                break
            timeout = min(0.05, max(0.0, self.heap[0][0] - now)) if self.heap else 0.05
            msg = self._next_message(timeout)
            if msg is None:
                continue
            if msg[0] != "done":
                continue
            _, worker, rid, stage, enqueued, started, ended, busy, inbound, core_wait, held, outputs = msg
            sr = rec.stages[stage]
            sr.waits_ms.append((started - enqueued) * 1000.0)
            sr.computes_ms.append((ended - started) * 1000.0)
            sr.busy_ms += busy
            if held is not None:
                sr.helds_ms.append(held)
            if busy:
                rec.calls.append((worker, stage, started, ended))
                if core_wait is not None:
                    sr.core_waits_ms.append(core_wait)
            done = time.monotonic()
            sr.returns_ms.append((done - ended) * 1000.0)
            if inbound is not None:
                sr.inbounds_ms.append(inbound)
            local = self.local.setdefault(stage, set(self.top.local_next(stage)))
            for link in self.top.links_from(stage):
                if link.dst not in local:  # a hand-over inside the worker was done there
                    self._send(link, rid, outputs, done)
        rec.unfinished = len(born)
        rec.span_s = max(duration_s, time.monotonic() - t0)
        rec.dispatcher_cpu_s = time.process_time() - cpu0
        return rec


    def _next_message(self, timeout: float):
        """A worker's message, or None once `timeout` (s) has passed. Waits in select(), whose
        timeout is in microseconds: Queue.get(timeout=) waits in poll(), which rounds it up to
        whole milliseconds, and came back 0.7 ms late at the median (1.2 at p95) here, on
        every delivery a link delays."""
        if not select.select([self.outq._reader], [], [], timeout)[0]:
            return None
        try:
            return self.outq.get_nowait()
        except queue.Empty:
            return None


def _io(folder: str, spec: dict) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(folder) / spec["io"]).read_text())


def run_plan(topology: Topology, specs: dict, folder: str, network, arrivals: list[float],
             duration_s: float, drain_s: float, on_event=None) -> RunRecord:
    import signal
    import threading

    dispatcher = Dispatcher(topology, specs, folder, network, on_event)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C must reach this loop as KeyboardInterrupt (an imported runtime may have reset
        # SIGINT to its default, which would kill this process and orphan the workers)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        dispatcher.start()
        if dispatcher.record.failure is None:
            dispatcher.probe()
        if dispatcher.record.failure is None:
            on_event and on_event(f"running {duration_s:g} s: {len(arrivals)} requests")
            dispatcher.run(arrivals, duration_s, drain_s)
    finally:
        dispatcher.stop()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return dispatcher.record
