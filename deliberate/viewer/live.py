"""The live view: a page on 127.0.0.1 that draws a search while it runs.

    live = LiveView(question="...")
    url = live.start()                           # http://127.0.0.1:PORT/
    result = deliberate.think(question, on_event=live.on_event)
    live.finish(result.trace)                    # the page becomes the static view
    live.wait_delivered(timeout=5)               # let an open page receive it
    live.close()

The page is the static viewer's page and renderer; only its boot script differs: it
opens an ``EventSource`` on ``/events``, hands every search event to
``Viewer.applyEvent`` and, once the search is done, the whole trace to
``Viewer.setTrace``. Its CSP therefore allows ``connect-src 'self'`` and nothing else.
A client that connects late (or reloads) is sent every event so far, so every client
sees the same tree. Search events carry node ids and values but no text, so thoughts
appear when the trace arrives at the end. It is served by uvicorn, Starlette and
sse-starlette, which come with the ``server`` extra.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from deliberate.errors import DeliberateError
from deliberate.viewer.html import STATIC_POLICY, check_tree, embed_json, page, render_html

LIVE_POLICY = STATIC_POLICY + "; connect-src 'self'"
LIVE_BOOT = """const first = JSON.parse(document.getElementById("trace").textContent);
Viewer.start(first.meta);
const source = new EventSource("events");
source.addEventListener("event", (m) => Viewer.applyEvent(JSON.parse(m.data)));
source.addEventListener("trace", (m) => { source.close(); Viewer.setTrace(JSON.parse(m.data)); });"""
KEEPALIVE = 15  # seconds between SSE pings, so proxies and browsers keep an idle stream open


class LiveView:
    """A local live page fed by search events; see the module docstring."""

    def __init__(self, *, question: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.question = question
        self.host, self.port = host, port
        self._events: list[str] = []  # each event already as JSON, in order
        self._trace: dict[str, Any] | None = None
        self._trace_json = ""
        self._delivered = threading.Event()  # some page has been sent the finished trace
        self._closed = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None  # replaced on each change, so no waiter misses one
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- the search's side --------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> str:
        """Serve the page in a background thread; returns its URL once it accepts connections."""
        try:
            import sse_starlette  # noqa: F401  (imported again where the app is built)
            import uvicorn
        except ImportError:
            raise DeliberateError("the live view needs the server extra: pip install 'deliberate[server]'") from None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))  # port 0: the system picks a free one
        except OSError as exc:
            sock.close()
            raise DeliberateError(f"cannot serve the live view on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="live-view", daemon=True)
        self._thread.start()
        end = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise DeliberateError("the live view's server did not start")
            time.sleep(0.01)
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def on_event(self, event: dict[str, Any]) -> None:
        """Pass one search event to every page; safe to call from the search's thread."""
        with self._lock:
            if self._closed or self._trace is not None:
                return
            self._events.append(_json(event))
        self._wake()

    def finish(self, trace: dict[str, Any]) -> None:
        """The search is done: send ``trace``, after which the page is the static view."""
        check_tree(trace)  # a bad trace fails here, not in every browser
        data = embed_json(trace)  # and so does one that JSON cannot carry (NaN)
        with self._lock:
            self._trace = trace
            self._trace_json = data
        self._wake()

    def wait_delivered(self, timeout: float) -> bool:
        """Wait until a page has received the finished trace, so that closing right after
        does not leave an open page without it; False if none had within ``timeout``."""
        return self._delivered.wait(timeout)

    def close(self) -> None:
        """End every stream and stop the server."""
        with self._lock:
            self._closed = True
        self._wake()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the server's side ------------------------------------------------------------------
    def _wake(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._renew)
            except RuntimeError:  # the loop stopped in between: nobody is listening
                pass

    def _renew(self) -> None:  # runs in the server's loop
        old, self._changed = self._changed, asyncio.Event()
        if old is not None:
            old.set()

    def _app(self) -> Any:
        from contextlib import asynccontextmanager

        from sse_starlette.sse import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse
        from starlette.routing import Route

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._changed = asyncio.Event()
            yield

        async def index(request: Any) -> HTMLResponse:
            with self._lock:
                trace = self._trace
            if trace is not None:  # a page opened after the search is simply the static view
                return HTMLResponse(render_html(trace), headers={"Cache-Control": "no-store"})
            html = page({"meta": {"question": self.question}}, policy=LIVE_POLICY, boot=LIVE_BOOT)
            return HTMLResponse(html, headers={"Cache-Control": "no-store"})

        async def events(request: Any) -> EventSourceResponse:
            return EventSourceResponse(self._stream(), ping=KEEPALIVE, headers={"Cache-Control": "no-store"})

        return Starlette(routes=[Route("/", index), Route("/events", events)], lifespan=lifespan)

    async def _stream(self) -> AsyncIterator[dict[str, str]]:
        """Every event so far, then each new one, then the trace; one SSE message each."""
        sent = 0
        while True:
            changed = self._changed  # taken before reading, so a change after the read still wakes us
            with self._lock:
                fresh, trace, closed = self._events[sent:], self._trace_json, self._closed
            for data in fresh:
                yield {"event": "event", "data": data}
            sent += len(fresh)
            if trace:
                yield {"event": "trace", "data": trace}
                self._delivered.set()
                return
            if closed or changed is None:
                return
            await changed.wait()


def _json(event: dict[str, Any]) -> str:
    """An event as JSON the browser can parse: a NaN or infinity becomes null."""
    try:
        return json.dumps(event, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(event), ensure_ascii=False, allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
