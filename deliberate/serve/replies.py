"""The OpenAI-shaped objects the server sends: completions, chunks, usage.

Field names follow the OpenAI API exactly; deliberate's own data goes in one extra
object, ``deliberate``, which clients that do not know it ignore.

- ``message.content`` (``choices[0].text`` for /v1/completions) is the answer;
  ``reasoning_content`` is the answer path, one thought per line.
- No answer within the budget is not an error: ``finish_reason`` is ``"length"``,
  content is null, and ``deliberate.stop_reason`` says why the search ended.
- ``usage.completion_tokens`` counts every token the search generated. The answer is
  taken from those thoughts, not written afresh, so all of them are reasoning:
  ``completion_tokens_details.reasoning_tokens`` is the same number.
  ``prompt_tokens`` counts the prompt tokens of every model call of the search.
"""

from __future__ import annotations

import time
from typing import Any

from deliberate.serve.requests import ThinkRequest
from deliberate.serve.runner import Outcome


def finish_reason(outcome: Outcome) -> str:
    """"stop" for an answer; "length" when the budget (time or tokens) ran out first."""
    return "stop" if outcome.answer is not None and outcome.stop_reason != "max_tokens" else "length"


def usage(outcome: Outcome) -> dict[str, Any]:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.tokens,
        "total_tokens": outcome.prompt_tokens + outcome.tokens,
        "completion_tokens_details": {"reasoning_tokens": outcome.tokens},
    }


def extension(outcome: Outcome, trace_id: str, request: ThinkRequest) -> dict[str, Any]:
    """The ``deliberate`` object: how the search went."""
    return {
        "trace_id": trace_id,
        "stop_reason": outcome.stop_reason,
        "solved": outcome.solved,
        "answers": outcome.answers,
        "nodes": outcome.nodes,
        "thinking_seconds": outcome.thinking_seconds,
        "think": request.think,
        "strategy": request.strategy,
        "task": request.task,
    }


def reply(request: ThinkRequest, outcome: Outcome, trace_id: str) -> dict[str, Any]:
    """The whole non-streaming reply, chat or completion."""
    reasoning = "\n".join(outcome.path) if outcome.path else None
    if request.kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": outcome.answer, "reasoning_content": reasoning},
            "finish_reason": finish_reason(outcome),
            "logprobs": None,
        }
    else:
        choice = {"index": 0, "text": outcome.answer, "reasoning_content": reasoning,
                  "finish_reason": finish_reason(outcome), "logprobs": None}  # fmt: skip
    return {
        **_head(request, trace_id, chunk=False),
        "choices": [choice],
        "usage": usage(outcome),
        "deliberate": extension(outcome, trace_id, request),
    }


def chunk(request: ThinkRequest, trace_id: str, *, content: str | None = None, reasoning: str | None = None,
          role: bool = False, finish: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """One streamed chunk: a chat delta, or a completion's text piece."""
    if request.kind == "chat":
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if content is not None:
            delta["content"] = content
        if reasoning is not None:
            delta["reasoning_content"] = reasoning
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    else:
        choice = {"index": 0, "text": content or "", "finish_reason": finish, "logprobs": None}
        if reasoning is not None:
            choice["reasoning_content"] = reasoning
    out = {**_head(request, trace_id, chunk=True), "choices": [choice]}
    if extra:
        out["deliberate"] = extra
    return out


def usage_chunk(request: ThinkRequest, trace_id: str, outcome: Outcome) -> dict[str, Any]:
    """The last chunk before [DONE] when ``stream_options.include_usage`` is set."""
    return {**_head(request, trace_id, chunk=True), "choices": [], "usage": usage(outcome)}


def _head(request: ThinkRequest, trace_id: str, *, chunk: bool) -> dict[str, Any]:
    if request.kind == "chat":
        kind, prefix = ("chat.completion.chunk" if chunk else "chat.completion"), "chatcmpl"
    else:
        kind, prefix = "text_completion", "cmpl"
    return {"id": f"{prefix}-{trace_id}", "object": kind, "created": int(time.time()), "model": request.model,
            "system_fingerprint": None}  # fmt: skip
