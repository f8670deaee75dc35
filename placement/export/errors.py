"""The export's user errors: one line each, exit code 2 in the CLI."""

from __future__ import annotations

from profiles.errors import UserError


class ExportError(UserError):
    """A plan or bundle the export cannot use (bad plan.json, another spec's plan, a changed
    bundle, a missing cross compiler); `str()` is the one line shown."""
