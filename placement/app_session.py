"""How one session's page is served: results reach it on its own event loop (`EventLoop`),
the template goes into its document in one go (`Page`), and a download may come to nothing
(`OptionalDownload`). Panel and Bokeh mechanics only; `placement.app_layout` lays the page out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque

import panel as pn
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

_log = logging.getLogger("placement.app")


def quiet_closed_connections(loop: asyncio.AbstractEventLoop) -> None:
    """A browser that closes its tab while the server is sending it an update leaves Tornado's
    write task failed, and asyncio prints that as a traceback ("Task exception was never
    retrieved ... WebSocketClosedError"; bokeh/bokeh#7619, perspective-dev/perspective#2969).
    The session is gone and nothing is lost: one debug line, not a traceback in the terminal.
    Every other unhandled error still reaches the loop's default handler."""

    def handler(loop, context):
        if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
            _log.debug("a browser closed while the app was sending it an update")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class OptionalDownload(pn.widgets.FileDownload):
    """A FileDownload whose callback may return None: nothing to download (the state has
    said why, as the session's error). Panel's own raises on None."""

    def _sync_data(self, fileobj):
        if fileobj is not None:
            super()._sync_data(fileobj)


class EventLoop:
    """Runs callbacks on a session's event loop, holding its document lock: the worker's results
    change widgets and plots only there (Bokeh models are not thread-safe).

    Nothing runs before the browser has the page (`pn.state.onload`): until then callbacks queue
    up, in order. A model added to the page in the moment between the browser pulling the
    document and Panel counting the session as connected never reached the browser (the
    frontier's table, filled when the frontier came early: its selection later arrived in the
    browser as a "reference … isn't known" console error).

    One callback per turn of the loop: Panel writes a callback's changes to the browser on the
    next turn, so the headline's patch leaves before the tables and charts are even built.

    `settle` runs the first results while the page is being made, so that they are in the
    document the browser first receives."""

    def __init__(self, doc):
        self.doc = doc
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque = deque()
        self._loaded = False
        self._pumping = False  # a turn is scheduled
        pn.state.onload(self._on_load)

    def _on_load(self) -> None:
        with self._lock:
            self._loaded = True
        self._kick()

    def __call__(self, fn) -> None:
        with self._lock:
            self._queue.append(fn)
            self._arrived.notify_all()
        self._kick()

    def settle(self, done, timeout_s: float) -> bool:
        """While the session is being made (before the page is served): run the queued
        callbacks here as they arrive until `done()` holds and none is left, at most
        `timeout_s`. Their widgets and plots are then part of the page as first sent: no
        patches, and nothing to re-walk later. False when it timed out (a cold start that is
        profiling: the page comes at once and the results follow)."""
        from panel.io.state import set_curdoc

        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                while not self._queue:
                    left = deadline - time.monotonic()
                    if done():
                        return True
                    if left <= 0:
                        return False
                    self._arrived.wait(left)
                fn = self._queue.popleft()
            with set_curdoc(self.doc):
                fn()

    def _kick(self) -> None:
        with self._lock:
            if self._pumping or not self._loaded or not self._queue:
                return
            self._pumping = True
        with contextlib.suppress(Exception):  # the session is gone: nobody to show it to
            self.doc.add_next_tick_callback(self._turn)

    def _turn(self) -> None:
        from panel.io.state import set_curdoc

        with self._lock:
            fn = self._queue.popleft() if self._queue else None
        try:
            if fn is not None:
                with set_curdoc(self.doc):
                    fn()
        finally:
            with self._lock:
                self._pumping = False
            self._kick()


class Page(pn.template.BootstrapTemplate):
    """The template, put into its document with the document frozen: Bokeh collects the page's
    models once instead of once per root the template adds (0.2-0.4 s of every first page)."""

    def server_doc(self, doc=None, title=None, location=True):
        doc = doc or pn.state.curdoc
        if doc is None:
            return super().server_doc(doc, title, location)
        with doc.models.freeze():
            return super().server_doc(doc, title, location)
