"""The interactive app: `panel serve app.py` (or `placement app [SPEC]`).

Layout only; the layout lives in `placement.app_layout` (so an installed package serves it too)
and the state it lays out in `placement.app_state`. Environment: PLACEMENT_APP_SPEC,
PLACEMENT_APP_PROFILES, PLACEMENT_APP_OFFERS choose the spec and optional tables.
"""

import asyncio

import panel as pn

from placement.app_layout import PlacementApp, create_app  # noqa: F401
from placement.app_session import quiet_closed_connections

if pn.state.served:
    quiet_closed_connections(asyncio.get_event_loop())  # the server's loop: this runs on it
    create_app().template().servable()
