"""The streamed reply (``stream: true``): OpenAI chunks over SSE, as the search runs.

    data: {... "delta": {"role": "assistant", "content": ""}, "deliberate": {"trace_id": ...}}
    data: {... "delta": {"reasoning_content": "[depth 1 · value 0.83 · open] 4 + 8 = 12 (left: 6 12)\\n"}}
    ...                                                  one per new thought
    data: {... "delta": {"content": "(4 + 8) * (6 - 4) = 24"}}
    data: {... "delta": {}, "finish_reason": "stop", "deliberate": {"stop_reason": ...}}
    data: {... "choices": [], "usage": {...}}            with stream_options.include_usage
    data: [DONE]

A client that disconnects cancels the search: sse-starlette cancels this generator
(and calls the close handler), and either way the search's deadline is cancelled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from deliberate.errors import DeliberateError
from deliberate.serve import replies
from deliberate.serve.runner import SearchRun

KEEPALIVE = 15  # seconds between SSE comments, so proxies keep a quiet stream open


def _data(payload: Any) -> dict[str, str]:
    return {"data": payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}


async def reply_stream(run: SearchRun) -> AsyncIterator[dict[str, str]]:
    """The SSE messages of one streamed reply; see the module docstring."""
    request, entry = run.request, run.entry
    trace_id = entry.id
    try:
        yield _data(replies.chunk(request, trace_id, role=True, extra={"trace_id": trace_id}))
        async for line in entry.lines.follow():
            yield _data(replies.chunk(request, trace_id, reasoning=line))
        try:
            outcome = await asyncio.wrap_future(run.future)
        except DeliberateError as error:  # the status line is long gone: report it in the stream
            yield _data({"error": {"message": str(error), "type": "server_error", "param": None, "code": None}})
            yield _data("[DONE]")
            return
        if outcome.answer is not None:
            yield _data(replies.chunk(request, trace_id, content=outcome.answer))
        ext = replies.extension(outcome, trace_id, request)
        yield _data(replies.chunk(request, trace_id, finish=replies.finish_reason(outcome), extra=ext))
        if request.include_usage:
            yield _data(replies.usage_chunk(request, trace_id, outcome))
        yield _data("[DONE]")
    finally:
        if not run.future.done():
            run.cancel()  # the client went away mid-search
