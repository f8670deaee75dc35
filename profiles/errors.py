"""The one base class of every error a user can cause (a wrong field, a missing file, a bad CSV).

It lives in the lowest layer so that every package's own errors derive from it and every shell
(the CLI, the app) shows any of them as one line without a list of types to keep in step.
"""

from __future__ import annotations


class UserError(ValueError):
    """Input the tool cannot use; `str()` is the one line shown to the user."""
