"""Imported rows (`placement profiles import`) back to the profiler: the row provider that gives
the store's `imported` rows of the pieces profiled, so a plan uses them.

A row bound to a model (imported with the model's hash) applies only to that model; an unbound
row applies to every model with that piece name. Precedence is the merge's
(`profiles.rows.merge_rows`): measured > imported > estimated.
"""

from __future__ import annotations

from collections.abc import Sequence

from profiles.cache import ProfileCache
from profiles.onnx_prep import model_digest
from profiles.store import IMPORTED, MODEL, SHORT_HASH
from profiles.table import HARDWARE, PIECE, PROFILE_COLUMNS


def stored_imported_rows(pieces: Sequence, hardware: Sequence[str] | None = None,
                         store=None) -> list[dict]:
    """The store's imported ProfileTable rows of `pieces` (PieceSource) on `hardware` (default:
    every class). Matches `profiles.pieces.RowProvider`; a piece whose file is missing is skipped."""
    store = store if store is not None else ProfileCache().store
    if not store.path.is_file():
        return []
    listing = store.listing(source=IMPORTED)
    if listing.empty:
        return []
    wanted = set(hardware) if hardware else None
    rows = []
    for source in pieces:
        mine = listing[listing[PIECE] == source.piece]
        if mine.empty:
            continue
        try:
            digest = model_digest(source.onnx_path)[:SHORT_HASH]
        except (OSError, ValueError):
            continue
        mine = mine[(mine[MODEL] == "") | (mine[MODEL] == digest)]
        if wanted is not None:
            mine = mine[mine[HARDWARE].isin(wanted)]
        rows.extend(mine[PROFILE_COLUMNS].to_dict("records"))
    return rows
