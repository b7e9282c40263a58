"""The FastAPI app: OpenAI routes that think, traces, pages, health.

    POST /v1/chat/completions   POST /v1/completions   GET /v1/models
    GET /v1/traces/{id}         GET /v1/traces/{id}/events (SSE)
    GET /                       GET /traces/{id}/ (viewer)   GET /health

One backend serves every request: it is wrapped in a ``SharedBackend``, so the
searches in flight are batched into the same decode steps. Each search runs on its
own thread. Above ``max_concurrent`` searches a request gets 503 with Retry-After.
With an API key, every route wants ``Authorization: Bearer KEY`` (or HTTP Basic with
the key as password, which a browser can send to the pages and their event streams).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import math
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse

from deliberate.backends.shared import SharedBackend
from deliberate.errors import ContextOverflowError, DeliberateError, UsageError
from deliberate.serve import pages, replies
from deliberate.serve.requests import ApiError, Limits, model_names, parse_request
from deliberate.serve.runner import SearchRun, prepare
from deliberate.serve.store import Entry, TraceStore
from deliberate.serve.stream import KEEPALIVE, reply_stream

DISCONNECT_POLL = 0.25  # seconds between checks that a non-streaming client is still there


@dataclass
class ServeConfig:
    """The server's settings (``deliberate serve`` flags)."""

    limits: Limits = field(default_factory=Limits)
    max_concurrent: int = 4
    api_key: str | None = None
    keep_traces: int = 100
    max_body: int = 1_000_000  # bytes of one request body


class _State:
    """What the routes share: the backend, the runs in flight, the traces."""

    def __init__(self, backend: SharedBackend, config: ServeConfig, model_meta: dict[str, Any]) -> None:
        self.backend, self.config, self.model_meta = backend, config, model_meta
        self.store = TraceStore(config.keep_traces)
        self.runs: set[SearchRun] = set()
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    def admit(self, run: SearchRun) -> bool:
        with self.lock:
            if len(self.runs) >= self.config.max_concurrent:
                return False
            self.runs.add(run)
            return True

    def ended(self, run: SearchRun) -> None:  # on the search's thread
        with self.lock:
            self.runs.discard(run)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the soonest a running search may end."""
        with self.lock:
            left = [run.request.think - run.deadline.clock.now() + run.started for run in self.runs if run.started]
        return max(1, math.ceil(min(left, default=1.0)))


def create_app(backend: Any, config: ServeConfig | None = None, *, model_meta: dict[str, Any] | None = None,
               close_backend: bool = False) -> FastAPI:  # fmt: skip
    """The app around ``backend`` (any backend; it is shared, not copied)."""
    config = config or ServeConfig()
    shared = backend if isinstance(backend, SharedBackend) else SharedBackend(backend)
    meta = model_meta or {"model": shared.describe().get("model", "unknown"), "model_sha256": None}
    state = _State(shared, config, meta)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        yield
        for run in list(state.runs):
            run.cancel()
        if close_backend:
            shared.close()

    app = FastAPI(title="deliberate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.deliberate = state

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "live_sequences": shared.live_sequences(), "in_flight": len(state.runs)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "deliberate"}
                                           for name in model_names()]}  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _complete(state, request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _complete(state, request, "completion")

    @app.get("/v1/traces/{trace_id}")
    async def trace(trace_id: str) -> Response:
        entry = _entry(state, trace_id)
        if entry.trace is None:
            return JSONResponse({"id": entry.id, "status": entry.status, **entry.summary}, status_code=202)
        return JSONResponse(entry.trace)

    @app.get("/v1/traces/{trace_id}/events")
    @app.get("/traces/{trace_id}/events")
    async def trace_events(trace_id: str) -> EventSourceResponse:
        entry = _entry(state, trace_id)
        return EventSourceResponse(entry.event_stream(), ping=KEEPALIVE, sep="\n", headers={"Cache-Control": "no-store"})

    @app.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(pages.index_page(state.store.recent()), headers=_page_headers(pages.INDEX_POLICY))

    @app.get("/traces/{trace_id}")
    async def trace_redirect(trace_id: str) -> Response:
        _entry(state, trace_id)
        return RedirectResponse(f"/traces/{trace_id}/")  # the live page reads "events" beside itself

    @app.get("/traces/{trace_id}/")
    async def trace_page(trace_id: str) -> HTMLResponse:
        return HTMLResponse(pages.trace_page(_entry(state, trace_id)), headers={"Cache-Control": "no-store"})

    if config.api_key:
        app.add_middleware(KeyGuard, key=config.api_key)  # type: ignore[arg-type]
    return app


async def _complete(state: _State, request: Request, kind: str) -> Response:
    body = await _read_json(request, state.config.max_body)
    think = parse_request(body, kind, state.config.limits)
    source = "messages" if kind == "chat" else "prompt"
    try:
        plan = prepare(think)
    except DeliberateError as error:  # a question the task cannot read, say
        raise ApiError(str(error), param=source) from None
    entry = Entry(think.question, state.loop)
    run = SearchRun(think, plan, entry, state.backend, state.model_meta, state.ended)
    if not state.admit(run):
        error = ApiError(f"this server runs at most {state.config.max_concurrent} searches at once; retry later",
                         status=503, kind="server_busy")  # fmt: skip
        return JSONResponse(error.body(), status_code=503, headers={"Retry-After": str(state.retry_after())})
    state.store.add(entry)
    run.start()
    headers = {"X-Deliberate-Trace": entry.id}
    if think.stream:
        async def closed(message: Any) -> None:
            run.cancel()

        return EventSourceResponse(reply_stream(run), ping=KEEPALIVE, sep="\n", headers=headers,
                                   client_close_handler_callable=closed)  # fmt: skip
    while True:
        try:
            outcome = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(run.future)), DISCONNECT_POLL)
            break
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                run.cancel()  # nobody is waiting for the answer
        except ContextOverflowError as error:
            raise ApiError(str(error), param=source, code="context_length_exceeded") from None
        except UsageError as error:
            raise ApiError(str(error), param=source) from None
        except Exception as error:  # a failed model call: say so in OpenAI's shape
            raise ApiError(f"the search failed: {error}", status=500, kind="server_error") from None
    return JSONResponse(replies.reply(think, outcome, entry.id), headers=headers)


async def _read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing (413) one longer than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"the request body is over {limit} bytes", status=413)
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > limit:
            raise ApiError(f"the request body is over {limit} bytes", status=413)
    try:
        return json.loads(data)
    except ValueError:
        raise ApiError("the request body is not valid JSON") from None


def _entry(state: _State, trace_id: str) -> Entry:
    entry = state.store.get(trace_id)
    if entry is None:
        raise ApiError(f"no trace {trace_id!r} (this server keeps the last {state.config.keep_traces})",
                       param="id", status=404)  # fmt: skip
    return entry


def _page_headers(policy: str) -> dict[str, str]:
    return {"Content-Security-Policy": policy, "Cache-Control": "no-store"}


class KeyGuard:
    """ASGI middleware: every request needs the API key, as a Bearer token or as the
    password of HTTP Basic auth (what a browser can send to a page). A plain ASGI
    class rather than BaseHTTPMiddleware, so streams and disconnects pass untouched."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        error = ApiError("invalid or missing API key: send Authorization: Bearer KEY", status=401,
                         code="invalid_api_key")  # fmt: skip
        path = scope.get("path", "")
        challenge = 'Basic realm="deliberate"' if not path.startswith("/v1/") else "Bearer"
        response = JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)

    def _allowed(self, scope: dict[str, Any]) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(value.strip(), self.key)
        if scheme.lower() == b"basic":
            try:
                password = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
            except ValueError:
                return False
            return hmac.compare_digest(password, self.key)
        return False
