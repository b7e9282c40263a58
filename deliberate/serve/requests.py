"""Read an OpenAI request body into what one search needs, or say exactly what is wrong.

Every rejection is an ``ApiError`` that the app turns into OpenAI's error object,
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``, with
``param`` naming the field at fault, so a client can show it without a special case.

Standard OpenAI fields are accepted: the ones a search can use are honoured (model,
messages/prompt, stream, stream_options, seed, temperature, top_p, max_tokens,
max_completion_tokens, reasoning_effort); the ones that do not change a search (user,
stop, penalties, metadata, ...) are accepted and ignored. Fields that would ask for
something a search cannot give (n > 1, tools, logprobs, echo, ...) are refused rather
than ignored. deliberate's own extra fields are ``think``, ``task``, ``opt`` and
``verifier``; any other unknown field is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deliberate import strategies
from deliberate.duration import parse_duration
from deliberate.errors import DeliberateError
from deliberate.tasks import checked_name, detect

OURS = {"think", "task", "opt", "verifier"}
# OpenAI fields that change nothing in a search; accepted so that clients need no special case.
IGNORED = {
    "user", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "store", "metadata",
    "service_tier", "modalities", "prediction", "audio", "web_search_options", "verbosity",
    "prompt_cache_key", "safety_identifier", "parallel_tool_calls",
}  # fmt: skip
USED = {"model", "stream", "stream_options", "seed", "temperature", "top_p", "max_tokens", "reasoning_effort", "n"}
REFUSED = {"tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs", "response_format"}
CHAT_FIELDS = USED | IGNORED | REFUSED | {"messages", "max_completion_tokens"} | OURS
COMPLETION_FIELDS = USED | IGNORED | REFUSED | {"prompt", "best_of", "echo", "suffix"} | OURS
MODEL = "deliberate"


class ApiError(Exception):
    """A request the server refuses: HTTP ``status``, OpenAI error ``kind`` and ``param``."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error", code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.param, self.status, self.kind, self.code = param, status, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Limits:
    """What the server allows: its thinking times, strategy and input sizes."""

    strategy: str = "bfs"
    think: float = 30.0  # seconds, when a request names neither think nor reasoning_effort
    max_think: float = 300.0
    effort: dict[str, float] = field(default_factory=lambda: {"low": 5.0, "medium": 15.0, "high": 30.0})
    max_question: int = 16_000  # characters of question and context together


@dataclass
class ThinkRequest:
    """One request, checked: everything ``deliberate.api`` needs to run its search."""

    kind: str  # "chat" or "completion"
    model: str  # as the client named it, echoed in the reply
    question: str
    task: str
    strategy: str
    options: Any  # dict or list of "k=v", checked by the strategy
    think: float  # seconds, already capped by the server's max_think
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None  # every generated token counts, the search's included
    verifier: bool | None = None
    stream: bool = False
    include_usage: bool = False


def parse_request(body: Any, kind: str, limits: Limits) -> ThinkRequest:
    """The checked request for a chat (``kind="chat"``) or completion body."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    known = CHAT_FIELDS if kind == "chat" else COMPLETION_FIELDS
    for key in body:
        if key not in known:
            raise ApiError(f"unknown field {key!r} (deliberate's own fields: {', '.join(sorted(OURS))})", param=key)
    _refuse_unsupported(body)
    model = body.get("model") or MODEL
    strategy = _strategy_of(model, limits)
    try:
        task = checked_name(_get(body, "task", str) or None)  # "task": "" is no task given, as before
    except DeliberateError as error:
        raise ApiError(str(error), param="task") from None
    source = "messages" if kind == "chat" else "prompt"
    text, context = _chat_text(body.get("messages")) if kind == "chat" else (_prompt_text(body.get("prompt")), [])
    if task == "auto":
        task = detect(text)
    # Game of 24 reads the four numbers of its question, so context would only confuse it.
    question = text if task == "game24" or not context else "\n".join([*context, text])
    if len(question) > limits.max_question:
        raise ApiError(f"the question is {len(question)} characters; this server takes at most {limits.max_question}",
                       param=source, status=413)  # fmt: skip
    options = body.get("opt")
    if options is not None and not (isinstance(options, dict) or (isinstance(options, list) and all(isinstance(o, str) for o in options))):
        raise ApiError("opt must be an object or a list of 'key=value' strings", param="opt")
    try:
        strategies.make(strategy, options)  # unknown options are named here, before any search
    except DeliberateError as error:
        raise ApiError(str(error), param="opt") from None
    stream_options = _get(body, "stream_options", dict) or {}
    return ThinkRequest(
        kind=kind,
        model=model,
        question=question,
        task=task,
        strategy=strategy,
        options=options,
        think=_think_of(body, limits),
        seed=_get(body, "seed", int),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0, low_open=True),
        max_tokens=_token_cap(body),
        verifier=_get(body, "verifier", bool),
        stream=bool(_get(body, "stream", bool)),
        include_usage=bool(stream_options.get("include_usage")),
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = _get(body, "n", int)
    if n is not None and n != 1:
        raise ApiError("n must be 1: a search gives one answer per request", param="n")
    best_of = _get(body, "best_of", int)
    if best_of is not None and best_of != 1:
        raise ApiError("best_of must be 1: a search gives one answer per request", param="best_of")
    for key in ("tools", "functions"):
        if body.get(key):
            raise ApiError(f"{key} are not supported: the search answers in text", param=key)
    for key in ("tool_choice", "function_call"):
        if body.get(key) not in (None, "none"):
            raise ApiError(f"{key} is not supported: the search answers in text", param=key)
    for key in ("logprobs", "top_logprobs"):
        if body.get(key) not in (None, False, 0):
            raise ApiError(f"{key} is not supported: an answer is chosen from a search, not sampled", param=key)
    if body.get("echo"):
        raise ApiError("echo is not supported", param="echo")
    if body.get("suffix"):
        raise ApiError("suffix is not supported", param="suffix")
    response_format = body.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict) or response_format.get("type") != "text"):
        raise ApiError("only response_format {'type': 'text'} is supported", param="response_format")


def _strategy_of(model: Any, limits: Limits) -> str:
    """``deliberate`` is the server's strategy; ``deliberate/<name>`` picks one."""
    if not isinstance(model, str):
        raise ApiError("model must be a string", param="model")
    if model == MODEL:
        return limits.strategy
    prefix, _, name = model.partition("/")
    if prefix == MODEL and name in strategies.names():
        return name
    models = ", ".join(model_names())
    raise ApiError(f"unknown model {model!r} (models: {models})", param="model", code="model_not_found")


def model_names() -> list[str]:
    """What ``GET /v1/models`` lists: ``deliberate`` and one name per strategy."""
    return [MODEL, *(f"{MODEL}/{name}" for name in strategies.names())]


def _think_of(body: dict[str, Any], limits: Limits) -> float:
    """Seconds to think: ``think``, else ``reasoning_effort``, else the server's; capped."""
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in limits.effort:
        raise ApiError(f"reasoning_effort must be one of {', '.join(limits.effort)}, got {effort!r}",
                       param="reasoning_effort")  # fmt: skip
    if body.get("think") is not None:
        raw = body["think"]
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ApiError("think must be a duration such as '30s' or a number of seconds", param="think")
        try:
            seconds = parse_duration(raw)
        except DeliberateError as error:
            raise ApiError(str(error), param="think") from None
    elif effort is not None:
        seconds = limits.effort[effort]
    else:
        seconds = limits.think
    return min(seconds, limits.max_think)


def _token_cap(body: dict[str, Any]) -> int | None:
    caps = [v for v in (_get(body, "max_tokens", int), _get(body, "max_completion_tokens", int)) if v is not None]
    for cap in caps:
        if cap < 1:
            raise ApiError("max_tokens must be at least 1", param="max_tokens" if "max_tokens" in body else "max_completion_tokens")
    return min(caps) if caps else None


def _chat_text(messages: Any) -> tuple[str, list[str]]:
    """The last user message, and every other message as a "Context: role: text" line."""
    if not isinstance(messages, list) or not messages:
        raise ApiError("messages must be a non-empty list", param="messages")
    texts: list[tuple[str, str]] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError("each message needs a role and a content", param="messages")
        texts.append((message["role"], _content(message.get("content"))))
    users = [i for i, (role, _) in enumerate(texts) if role == "user"]
    if not users or not texts[users[-1]][1].strip():
        raise ApiError("messages need a user message with the question", param="messages")
    last = users[-1]
    context = [f"Context: {role}: {' '.join(text.split())}" for i, (role, text) in enumerate(texts) if i != last and text.strip()]
    return texts[last][1], context


def _content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ApiError("message content must be text (a string or text parts)", param="messages")


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError("prompt must be one non-empty string", param="prompt")
    return prompt


def _get(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    # bool is an int in Python; a JSON true is not a number
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(f"{key} must be {_KINDS[kind]}", param=key)
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(f"{key} must be a number", param=key)
    if value > high or value < low or (low_open and value == low):
        raise ApiError(f"{key} must be {'above' if low_open else 'at least'} {low:g} and at most {high:g}", param=key)
    return float(value)


_KINDS = {int: "an integer", bool: "true or false", str: "a string", dict: "an object"}
