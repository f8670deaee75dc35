"""Rows the store holds beside the profiler's own, back to the profiler: the row providers that
give the store's `imported` rows (`placement profiles import`) and its `measured-served` rows
(`placement verify --store-profiles`) of the pieces profiled, so a plan uses them.

A row bound to a model (imported with the model's hash; every served row) applies only to that
model; an unbound imported row applies to every model with that piece name. Precedence is the
merge's (`profiles.rows.merge_rows`): measured-served > measured > imported > estimated.
"""

from __future__ import annotations

from collections.abc import Sequence

from profiles.cache import ProfileCache
from profiles.onnx_prep import model_digest
from profiles.store import IMPORTED, MEASURED_SERVED, MODEL, SHORT_HASH
from profiles.table import HARDWARE, PIECE, PROFILE_COLUMNS


def _stored_rows(source: str, pieces: Sequence, hardware: Sequence[str] | None, store) -> list[dict]:
    store = store if store is not None else ProfileCache().store
    if not store.path.is_file():
        return []
    listing = store.listing(source=source)
    if listing.empty:
        return []
    wanted = set(hardware) if hardware else None
    rows = []
    for piece_source in pieces:
        mine = listing[listing[PIECE] == piece_source.piece]
        if mine.empty:
            continue
        try:
            digest = model_digest(piece_source.onnx_path)[:SHORT_HASH]
        except (OSError, ValueError):
            continue
        mine = mine[(mine[MODEL] == "") | (mine[MODEL] == digest)]
        if wanted is not None:
            mine = mine[mine[HARDWARE].isin(wanted)]
        rows.extend(mine[PROFILE_COLUMNS].to_dict("records"))
    return rows


def stored_imported_rows(pieces: Sequence, hardware: Sequence[str] | None = None,
                         store=None) -> list[dict]:
    """The store's imported ProfileTable rows of `pieces` (PieceSource) on `hardware` (default:
    every class). Matches `profiles.pieces.RowProvider`; a piece whose file is missing is skipped."""
    return _stored_rows(IMPORTED, pieces, hardware, store)


def stored_served_rows(pieces: Sequence, hardware: Sequence[str] | None = None,
                       store=None) -> list[dict]:
    """The store's measured-served rows of `pieces` on `hardware`: compute as a verify run on
    this machine measured it while serving a plan (each bound to its model's hash)."""
    return _stored_rows(MEASURED_SERVED, pieces, hardware, store)
