"""`placement app [SPEC]`: serve the interactive app (placement.app_layout) on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

MB = 1024 * 1024


def serve_app(
    spec_path: Optional[Path] = typer.Argument(None, metavar="SPEC", help="the spec to open (default: the demo)"),
    port: int = typer.Option(5006, "--port", help="port to listen on (0: any free port)"),
    address: str = typer.Option("127.0.0.1", "--address", help="address to bind; the default is this machine only"),
    profiles_csv: Optional[Path] = typer.Option(None, "--profiles", help="ProfileTable CSV for SPEC: no profiling"),
    offers_csv: Optional[Path] = typer.Option(None, "--offers", help="OfferTable CSV instead of the snapshot"),
    max_file_mb: float = typer.Option(200.0, "--max-file-mb", help="upload cap per file"),
    max_upload_mb: float = typer.Option(500.0, "--max-upload-mb", help="upload cap in total"),
    show: bool = typer.Option(False, "--show/--no-show", help="open a browser tab"),
) -> None:
    """Serve the interactive app: move the SLO, budget, load and network, see the plan change."""
    from placement import api
    from placement.spec import load_spec

    spec = spec_path or api.demo_spec_path()
    load_spec(spec)  # a bad spec fails here, naming its field, not in the first browser session
    for flag, path in (("--profiles", profiles_csv), ("--offers", offers_csv)):
        if path is not None and not path.is_file():
            raise api.InputError(f"{flag}: {path}: no such file")

    import asyncio

    import panel as pn
    from tornado.ioloop import IOLoop

    from placement.app_layout import create_app
    from placement.app_session import quiet_closed_connections

    def page():
        return create_app(spec, offers_csv=offers_csv, profiles_csv=profiles_csv,
                          max_file_mb=max_file_mb, max_total_mb=max_upload_mb).template()

    loopback = address in ("127.0.0.1", "localhost", "::1")
    origins = [f"127.0.0.1:{port}", f"localhost:{port}"] if loopback else ["*"]
    typer.echo(f"placement app: http://{address}:{port}/ ({spec}); Ctrl-C stops it")
    asyncio_loop = asyncio.new_event_loop()
    quiet_closed_connections(asyncio_loop)
    asyncio.set_event_loop(asyncio_loop)
    pn.serve(page, loop=IOLoop.current(), port=port, address=address, show=show, title="placement-optimizer",
             websocket_origin=origins, websocket_max_message_size=int(max_upload_mb * MB * 1.4) + MB,
             threaded=False)
