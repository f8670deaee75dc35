"""Files the shells write: plan.json, the summary, frontier plans — atomically, and a path that
cannot be written is one line naming it (the result already computed is printed first)."""

from __future__ import annotations

from pathlib import Path

from placement.plan import Plan
from placement.tables import InputError


def write_text(path: str | Path, text: str) -> None:
    """Write an output file atomically; a path that cannot be written is one line naming it."""
    from profiles.paths import atomic_write_text

    path = Path(path)
    try:
        atomic_write_text(path, text)
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; give a file path") from None
    except (NotADirectoryError, FileNotFoundError, FileExistsError):
        raise InputError(f"{path}: cannot write here (its folder does not exist or is a file)") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None


def write_outputs(outcome, plan_path: str | Path | None = None,
                  summary_path: str | Path | None = None) -> None:
    """plan.json (for deployers) and the Markdown summary, from the same plan."""
    from placement.report import markdown_summary

    if plan_path:
        write_text(plan_path, outcome.plan.model_dump_json(indent=2) + "\n")
    if summary_path:
        write_text(summary_path, markdown_summary(outcome.plan))


def plans_json(plans: list[Plan]) -> str:
    return "[" + ",\n".join(p.model_dump_json(indent=2) for p in plans) + "]"
