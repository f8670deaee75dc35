"""The interactive app: `panel serve app.py` (or `placement app [SPEC]`).

Layout only; the layout lives in `placement.app_layout` (so an installed package serves it too)
and the state it lays out in `placement.app_state`. Environment: PLACEMENT_APP_SPEC,
PLACEMENT_APP_PROFILES, PLACEMENT_APP_OFFERS choose the spec and optional tables.
"""

import panel as pn

from placement.app_layout import PlacementApp, create_app  # noqa: F401

if pn.state.served:
    create_app().template().servable()
