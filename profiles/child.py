"""Run one job in a spawned child process; get its result back, or a typed failure.

TVM (and, for a clean memory figure, ONNX Runtime) run in a fresh "spawn" child: a segfault in
a compiler pass or a MetaSchedule hang kills the child, and the parent turns that into a
`ChildFailure` with the stage the child was in and the tail of its log. Every adapter, the
tuner and the RPC compiler use this one loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ChildFailure(RuntimeError):
    """A child job failed: it raised (`error_type` set), crashed or ran out of time."""

    def __init__(self, stage: str, message: str, *, error_type: str | None = None,
                 exitcode: int | None = None, detail: dict | None = None, log_tail: str = ""):
        self.stage = stage
        self.error_type = error_type
        self.exitcode = exitcode
        self.detail = detail or {}
        self.log_tail = log_tail
        self.message = message
        super().__init__(message)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def log_tail(path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ("" when there is none)."""
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def child_main(conn, module: str, function: str, payload: dict, log_path: str | None) -> None:
    """Body of the child: redirect output to the log, run `module.function(payload, report)`."""
    import importlib
    import os
    import traceback

    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def report(stage) -> None:
        conn.send(("stage", stage))

    try:
        fn = getattr(importlib.import_module(module), function)
        result = fn(payload, report)
        conn.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as data
        traceback.print_exc()
        conn.send(("error", type(exc).__name__, str(exc), getattr(exc, "detail", {}) or {}))
    finally:
        conn.close()


def run_in_child(module: str, function: str, payload: dict, *, timeout_s: float,
                 log_path=None, first_stage: str = "start",
                 on_event: Callable[[dict], None] | None = None):
    """Run `module.function(payload, report)` in a spawned process and return its result.

    The function calls `report(stage)` as it goes, with a stage name or an event dict (its
    "stage", else its "event", names the stage); on a crash or timeout `ChildFailure.stage` says
    where it was. With `on_event`, the parent sees {"event": "child", "pid": ...} first and then
    every report as a dict, so it can show progress or kill the child. The child's stdout and
    stderr are appended to `log_path` (when given)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=child_main, args=(child_conn, module, function, payload,
                                 str(log_path) if log_path else None),
        daemon=True,
    )
    stage = first_stage
    deadline = time.monotonic() + timeout_s
    process.start()
    child_conn.close()
    try:
        if on_event is not None:
            on_event({"event": "child", "pid": process.pid})
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailure(stage, f"timed out after {timeout_s:.0f} s during {stage}",
                                   log_tail=log_tail(log_path))
            if not parent_conn.poll(min(remaining, 1.0)):
                if not process.is_alive() and not parent_conn.poll(0):
                    break
                continue
            try:
                message = parent_conn.recv()
            except EOFError:
                break
            if message[0] == "stage":
                event = message[1] if isinstance(message[1], dict) else {"event": message[1]}
                stage = str(event.get("stage", event.get("event", stage)))
                if on_event is not None:
                    on_event(event)
            elif message[0] == "ok":
                return message[1]
            else:
                _, error_type, text, detail = message
                raise ChildFailure(stage, text, error_type=error_type, detail=detail,
                                   log_tail=log_tail(log_path))
        process.join(5)
        raise ChildFailure(
            stage, f"child process {describe_exit(process.exitcode)} during {stage}",
            exitcode=process.exitcode, log_tail=log_tail(log_path),
        )
    finally:
        parent_conn.close()
        process.join(2)  # a finished child is exiting; give it a moment before killing
        if process.is_alive():
            process.kill()
            process.join(5)


def selftest_child(payload: dict, report) -> dict:
    """A child body for testing `run_in_child` itself: payload["do"] is ok|raise|crash|hang."""
    import os
    import signal

    report("selftest")
    action = payload.get("do", "ok")
    if action == "raise":
        raise ValueError("selftest asked to raise")
    if action == "crash":
        print("about to crash", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "hang":
        time.sleep(3600)
    return {"echo": payload}
