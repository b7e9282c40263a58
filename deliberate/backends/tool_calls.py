"""Tool calls inside generation, on any backend.

``generate_with_tools`` is the one way the search asks for tool use. A backend that
runs calls in its own decode loop (``LlamaBackend``) does so; any other gets
``continue_after_tools``, which writes each sample in rounds of plain ``generate``
calls: up to a call's start marker, then up to its end marker, then the tool's result
goes into the text and the model goes on (see ``deliberate.tools``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from deliberate.backends.base import Backend, FinishReason, GenerateRequest, Sample, cut_at_stop, derive_seed
from deliberate.clock import Deadline
from deliberate.tools import MAX_INPUT_TOKENS, ToolCall, ToolSyntax


def generate_with_tools(backend: Backend, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
    """``generate``, with each request's tool calls run inside its text.

    The one way the search asks for tool use: a backend's own ``generate_with_tools``
    when it has one (``LlamaBackend`` runs calls inside its decode loop), else
    ``continue_after_tools``. Requests without tools are plain ``generate`` requests.
    """
    if not any(r.tools is not None for r in requests):
        return backend.generate(requests, deadline)
    own = getattr(backend, "generate_with_tools", None)
    if own is not None:
        return own(requests, deadline)
    return continue_after_tools(backend, requests, deadline)


@dataclass
class _Thread:
    """One sample of a request being written by ``continue_after_tools``, call by call."""

    request: GenerateRequest
    index: int
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    generated: int = 0
    prompt_tokens: int = 0
    cached: int = 0
    finish: FinishReason | None = None
    inside: bool = False  # the text ends inside a call's input: next, ask up to its end marker
    rounds: int = 0
    costs: int = 0  # prefill of the continuation requests since the last call began


def continue_after_tools(backend: Backend, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
    """Tool calls on any backend, through plain ``generate`` calls (the slow path).

    Each sample is written in rounds, and every round is one batched ``generate`` call:

    1. Up to the request's own stop strings. If the text holds a call's start marker,
       it is kept up to that marker (the rest was the model writing the call and its
       result itself, and is dropped).
    2. From the start marker, up to the end marker only, and at most
       ``MAX_INPUT_TOKENS``: a backend does not say which stop string it met, so
       this round has no other. Text with one of the request's stops in it ends the
       sample there. Otherwise the tool runs on the input, its result and the close
       marker join the text, and round 1 continues from there.

    A call's ``prefill`` is what the two continuation requests cost in prompt tokens
    not served from the backend's cache. Completion tokens count everything the model
    generated, dropped text included.
    """
    first = backend.generate([replace(r, tools=None) if r.tools else r for r in requests], deadline)
    threads: list[list[_Thread]] = []
    for request, samples in zip(requests, first):
        row = []
        for index, sample in enumerate(samples):
            thread = _Thread(request, index, prompt_tokens=sample.prompt_tokens, cached=sample.cached_tokens)
            if request.tools is None:
                thread.text, thread.generated, thread.finish = sample.text, sample.completion_tokens, sample.finish_reason
            else:
                _advance(thread, sample, request.tools)
            row.append(thread)
        threads.append(row)
    while True:
        for thread in (t for row in threads for t in row if t.finish is None):
            if thread.generated >= thread.request.max_tokens:
                thread.finish = "length"
        live = [t for row in threads for t in row if t.finish is None]
        if not live:
            break
        asks = [_continuation(t) for t in live]
        for thread, samples in zip(live, backend.generate(asks, deadline)):
            sample = samples[0]
            thread.costs += max(0, sample.prompt_tokens - sample.cached_tokens)
            _advance(thread, sample, thread.request.tools)  # type: ignore[arg-type]
    return [
        [Sample(t.text, t.prompt_tokens, t.generated, t.finish or "deadline", t.cached, tuple(t.calls)) for t in row]
        for row in threads
    ]


def _continuation(thread: _Thread) -> GenerateRequest:
    request = thread.request
    tools = request.tools
    assert tools is not None
    thread.rounds += 1
    left = request.max_tokens - thread.generated
    return replace(
        request,
        prompt=request.prompt + thread.text,
        n=1,
        max_tokens=min(left, MAX_INPUT_TOKENS) if thread.inside else left,
        stop=(tools.end,) if thread.inside else request.stop,
        seed=derive_seed(derive_seed(request.seed, thread.index), thread.rounds),
        tools=None,
    )


def _advance(thread: _Thread, sample: Sample, tools: ToolSyntax) -> None:
    """Take one round's sample into the thread: the text so far, and what comes next."""
    request = thread.request
    thread.generated += sample.completion_tokens
    if thread.inside:
        text, stopped = cut_at_stop(sample.text, request.stop)
        begin = tools.open_call(thread.text)
        thread.text += text
        if stopped:
            thread.finish = "stop"  # the step ended inside the call: no call
        elif sample.finish_reason == "stop" and begin is not None:  # at the end marker
            call = replace(tools.call(thread.text[begin:]), prefill=thread.costs)
            thread.text += tools.end + tools.written(call)
            thread.calls.append(call)
            thread.inside = False
            thread.costs = 0
        elif sample.finish_reason == "length" and thread.generated < request.max_tokens:
            thread.inside = False  # an input that long is no call: the model writes on
        else:
            thread.finish = sample.finish_reason
        return
    if thread.calls and thread.costs:  # the continuation after the last call has been paid
        thread.calls[-1] = replace(thread.calls[-1], prefill=thread.calls[-1].prefill + thread.costs)
        thread.costs = 0
    at = sample.text.find(tools.start)
    if at >= 0 and len(thread.calls) < tools.max_calls and sample.finish_reason != "deadline":
        thread.text += sample.text[: at + len(tools.start)]
        thread.inside = True
        return
    thread.text += sample.text
    thread.finish = sample.finish_reason
