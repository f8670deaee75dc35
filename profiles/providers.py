"""Row providers: where rows measured elsewhere come from, passed to `profile_pieces` explicitly.

`profile_pieces(..., row_providers=default_row_providers())` adds the cached `tvm-tuned` rows
(`profiles.tuning.tune_piece` measured them) and the cached `measured-rpc` rows
(`profiles.rpc.measure_remote` measured them) of the pieces profiled. Nothing is registered
globally: a caller that wants these rows passes these providers.
"""

from __future__ import annotations

from profiles.pieces import RowProvider
from profiles.remote_rows import cached_remote_rows
from profiles.tuned_rows import cached_tuned_rows


def default_row_providers() -> tuple[RowProvider, ...]:
    """The providers of cached tvm-tuned rows and of cached measured-rpc rows, in that order."""
    return (cached_tuned_rows, cached_remote_rows)
