"""The long jobs a Workspace starts: tuning pieces within a time budget and measuring them on
remote devices through a TVM RPC tracker. Their logic lives here once, so the CLI, the app and a
script start them the same way; progress goes to a callback, failures come back as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from placement.tables import InputError


@dataclass
class TuneOutcome:
    results: list = field(default_factory=list)       # profiles.tuning.TuneResult per tuned piece
    failed: list[tuple[str, str]] = field(default_factory=list)  # (piece, one-line reason)
    budget_s: float = 0.0

    def notes(self) -> list[str]:
        """One line per piece whose budget earlier runs already spent."""
        return [f"{r.piece}: its budget on {r.hardware} was spent by earlier runs "
                f"({r.spent_before_s:.0f} s of {r.budget_s:.0f} s); give a larger budget to tune further"
                for r in self.results if r.trials_run == 0 and r.spent_before_s >= r.budget_s - 1]


def select_pieces(pieces: list, names: list[str] | None) -> list:
    if not names:
        return list(pieces)
    unknown = sorted(set(names) - {p.piece for p in pieces})
    if unknown:
        raise InputError(f"--piece: unknown piece(s) {', '.join(unknown)}; "
                         f"known: {', '.join(p.piece for p in pieces)}")
    return [p for p in pieces if p.piece in names]


def tune_pieces(pieces: list, *, budget: str | float, hardware: str | None = None,
                trials_per_task: int | None = None, on_progress=None, cancel=None) -> TuneOutcome:
    """Tune each piece with MetaSchedule; the budget is split equally over the pieces (fixed
    shares, so a re-run resumes each piece's plan). A TVM error on one piece is recorded and the
    others go on; `cancel()` returning True stops before the next piece."""
    from profiles.hardware import hardware_catalog
    from profiles.measure import NotMeasurableHereError
    from profiles.tuning import TuningBusyError, TuningError, parse_budget, tune_piece
    from profiles.tvm_adapter import TvmError

    try:
        budget_s = parse_budget(budget)
    except ValueError as exc:
        raise InputError(f"--budget: {exc}") from None
    if trials_per_task is not None and trials_per_task < 1:
        raise InputError("--trials-per-task: must be at least 1")
    if hardware is not None and hardware not in hardware_catalog():
        raise InputError(f"--hardware: unknown hardware class {hardware!r}")
    outcome = TuneOutcome(budget_s=budget_s)
    share = budget_s / max(1, len(pieces))
    for source in pieces:
        if cancel is not None and cancel():
            break
        try:
            outcome.results.append(tune_piece(source, hardware, share, trials_per_task=trials_per_task,
                                              on_progress=on_progress))
        except NotMeasurableHereError as exc:
            raise InputError(f"--hardware: {exc} (tuning runs trials on this machine)") from None
        except TuningBusyError as exc:
            raise InputError(str(exc)) from None
        except (TuningError, TvmError) as exc:
            outcome.failed.append((source.piece, str(exc)))
    return outcome


def untuned_row(source, hardware: str) -> dict | None:
    """The cached untuned TVM row of a piece on `hardware` (default settings), to compare with."""
    from profiles.cache import ProfileCache, profile_key
    from profiles.measure import MeasureConfig
    from profiles.onnx_prep import model_digest
    from profiles.rows import batch_of, profile_extra
    from profiles.tvm_adapter import tvm_version

    try:
        key = profile_key(model_digest(source.onnx_path), source.input_shapes, hardware, "tvm",
                          batch_of(source.input_shapes), tvm_version(), MeasureConfig(), profile_extra())
        entry = ProfileCache().get(key)
    except (OSError, ValueError):
        return None
    return entry.get("row") if isinstance(entry, dict) else None


def remote_config(path: Path | None, tracker: str | None):
    """The remote config (tracker keys -> hardware classes) and the tracker to use; the tracker
    is checked before any local profiling starts."""
    from profiles.remote import RemoteConfig, RemoteConfigError, load_remote_config
    from profiles.rpc import RpcError, tracker_status

    try:
        config = load_remote_config(path) if path is not None else RemoteConfig()
    except RemoteConfigError as exc:
        raise InputError(str(exc)) from None
    tracker = tracker or config.tracker
    if path is not None and not tracker:
        raise InputError(f"{path}: no tracker: pass --tracker HOST:PORT or set `tracker:`")
    try:
        tracker_status(tracker)
    except (RpcError, RemoteConfigError) as exc:
        raise InputError(str(exc)) from None
    return config, tracker


def remote_rows(pieces: list, tracker: str, config, on_progress=None) -> tuple[list[dict], list[str]]:
    """Rows measured on every tracker device the config maps to a hardware class (cached as they
    finish), and one warning line per failed measurement."""
    from profiles.remote import RemoteConfigError
    from profiles.rpc import RpcError, measure_remote

    try:
        report = measure_remote(pieces, tracker, config, on_progress=on_progress)
    except (RpcError, RemoteConfigError) as exc:
        raise InputError(str(exc)) from None
    warnings = [f"{p.piece} on {p.hardware} ({p.runtime}): {p.error_type}: {p.message}" for p in report.problems]
    if not report.devices and not len(report.table):
        warnings.append(f"no device of the tracker at {tracker} is mapped to a hardware class "
                        "(see --remote-config)")
    return report.table.to_dict("records"), warnings
