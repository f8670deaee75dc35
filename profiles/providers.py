"""Row providers: where rows measured elsewhere come from, passed to `profile_pieces` explicitly.

`profile_pieces(..., row_providers=default_row_providers())` adds the cached `tvm-tuned` rows
(`profiles.tuning.tune_piece` measured them) and the cached `measured-rpc` rows
(`profiles.rpc.measure_remote` measured them), the store's imported rows (`placement profiles
import`) and its measured-served rows (`placement verify --store-profiles`) of the pieces profiled. Nothing is registered globally: a caller that wants these rows
passes these providers. Which row wins is the merge's rule (`profiles.rows.merge_rows`).
"""

from __future__ import annotations

from profiles.imported_rows import stored_imported_rows, stored_served_rows
from profiles.pieces import RowProvider
from profiles.remote_rows import cached_remote_rows
from profiles.tuned_rows import cached_tuned_rows


def default_row_providers() -> tuple[RowProvider, ...]:
    """The providers of cached tvm-tuned rows, cached measured-rpc rows, imported rows and rows
    measured while serving."""
    return (cached_tuned_rows, cached_remote_rows, stored_imported_rows, stored_served_rows)
