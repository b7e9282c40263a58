"""``deliberate serve``'s app on a scripted backend: a real uvicorn on 127.0.0.1, real
HTTP (httpx), real searches, and a scripted model whose tokens cost real (tiny) time.

The scripted backend's clock sleeps when it is advanced, so the server's real-time
deadlines and the backend agree on what time it is.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="deliberate serve needs the server extra")
pytest.importorskip("sse_starlette", reason="deliberate serve needs the server extra")

import uvicorn  # noqa: E402

from conftest import SOLVABLE, UNSOLVABLE, Game24Responder, game24_answer_ok, game24_scorer  # noqa: E402
from deliberate import strategies  # noqa: E402
from deliberate.backends.scripted import ScriptedBackend  # noqa: E402
from deliberate.serve import Limits, ServeConfig, create_app  # noqa: E402
from test_serve_shared import SleepingClock  # noqa: E402

GENERIC = "Why is the sky blue?"  # a generic question: the search runs until its time is up


def scripted_game24() -> ScriptedBackend:
    """Plays Game of 24 (and answers anything else with an empty line), in real time."""
    return ScriptedBackend(Game24Responder(error_rate=0.2), scores=game24_scorer, clock=SleepingClock(),  # type: ignore[arg-type]
                           seconds_per_token=0.002, seconds_per_score=0.002)  # fmt: skip


@contextmanager
def serving(config: ServeConfig | None = None, backend: Any = None) -> Iterator[str]:
    """The app on a real uvicorn in a thread; yields its base URL."""
    app = create_app(backend or scripted_game24(), config or ServeConfig(), close_backend=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < end, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving(ServeConfig(limits=Limits(think=2.0, max_think=5.0), max_concurrent=8)) as base:
        yield base


def chat(url: str, content: str = SOLVABLE, **fields: Any) -> httpx.Response:
    body = {"model": "deliberate", "messages": [{"role": "user", "content": content}], "think": "2s", **fields}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def sse_data(response: httpx.Response) -> list[str]:
    """The data fields of an SSE stream, in order."""
    return [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]


def assert_error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == ("invalid_request_error" if status in (400, 404, 413) else error["type"])
    assert error["param"] == param and "code" in error and error["message"]
    return error


# -- requests the server refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "deliberate/nope"}, "model"),
        ({"model": "gpt-4o"}, "model"),
        ({"think": "abc"}, "think"),
        ({"think": "none"}, "think"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"thinking": "30s"}, "thinking"),
        ({"opt": {"breadth": 2, "nope": 1}}, "opt"),
        ({"opt": ["breadth"]}, "opt"),
        ({"task": "poetry"}, "task"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "no question here"}]}, "messages"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_bad_requests_get_400_naming_the_field(url: str, fields: dict[str, Any], param: str) -> None:
    error = assert_error(chat(url, **fields), 400, param)
    if param == "model":
        assert "deliberate/bfs" in error["message"]  # the message lists what exists
    if param == "task":
        assert error["message"].startswith("unknown task 'poetry' (tasks: auto, generic, game24, math")


def test_a_completion_prompt_the_task_cannot_read_is_400(url: str) -> None:
    response = httpx.post(f"{url}/v1/completions", json={"prompt": "Use 1 2 to make 24.", "task": "game24"}, timeout=30)
    assert_error(response, 400, "prompt")
    assert_error(httpx.post(f"{url}/v1/completions", json={"prompt": "x", "echo": True}), 400, "echo")


def test_bodies_and_questions_past_the_limits_get_413() -> None:
    with serving(ServeConfig(max_body=2048, limits=Limits(max_question=100))) as base:
        assert_error(chat(base, "x" * 5000), 413, None)
        assert_error(chat(base, "word " * 30), 413, "messages")
        assert_error(httpx.post(f"{base}/v1/chat/completions", content=b"{nope", timeout=10), 400, None)


def test_standard_fields_that_change_nothing_are_accepted(url: str) -> None:
    response = chat(url, top_p=0.9, user="me", stop=["\n"], presence_penalty=0.5, frequency_penalty=0.1,
                    n=1, stream_options=None, metadata={"a": "b"}, tool_choice="none")  # fmt: skip
    assert response.status_code == 200, response.text


# -- the API key ---------------------------------------------------------------------------------


def test_the_api_key_guards_every_route() -> None:
    with serving(ServeConfig(api_key="s3cret")) as base:
        for method, path in (("GET", "/v1/models"), ("GET", "/"), ("GET", "/health"), ("GET", "/v1/traces/x"),
                             ("POST", "/v1/chat/completions")):  # fmt: skip
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                response = httpx.request(method, base + path, headers=headers, json={}, timeout=10)
                assert_error(response, 401, None)
                assert response.json()["error"]["code"] == "invalid_api_key"
        good = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{base}/v1/models", headers=good).status_code == 200
        response = httpx.post(f"{base}/v1/chat/completions", headers=good, timeout=30,
                              json={"messages": [{"role": "user", "content": SOLVABLE}], "think": "2s"})  # fmt: skip
        assert response.status_code == 200
        # A browser can send the key as the password of HTTP Basic auth, which a page's
        # EventSource then reuses; the pages ask for it.
        assert httpx.get(f"{base}/").headers["www-authenticate"].startswith("Basic")
        basic = {"Authorization": "Basic " + base64.b64encode(b"any:s3cret").decode()}
        assert httpx.get(f"{base}/", headers=basic).status_code == 200


# -- listing, health ------------------------------------------------------------------------------


def test_models_lists_deliberate_and_each_strategy(url: str) -> None:
    data = httpx.get(f"{url}/v1/models").json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["deliberate", *(f"deliberate/{s}" for s in strategies.names())]


def test_health_counts_searches_and_sequences(url: str) -> None:
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "live_sequences": 0, "in_flight": 0}


# -- replies ------------------------------------------------------------------------------------


def test_a_chat_completion_answers_with_its_path_usage_and_trace(url: str) -> None:
    response = chat(url, seed=3, model="deliberate/bfs")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "chat.completion" and data["model"] == "deliberate/bfs"
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert game24_answer_ok(choice["message"]["content"], SOLVABLE)
    steps = choice["message"]["reasoning_content"].splitlines()
    assert len(steps) == 3 and all("left:" in step for step in steps)  # three moves lead to 24
    usage = data["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == usage["completion_tokens"]
    ext = data["deliberate"]
    assert ext["stop_reason"] == "solved" and ext["solved"] and ext["nodes"] >= 4 and ext["strategy"] == "bfs"
    assert choice["message"]["content"] in ext["answers"] and all(n >= 1 for n in ext["answers"].values())
    assert response.headers["x-deliberate-trace"] == ext["trace_id"]
    trace = httpx.get(f"{url}/v1/traces/{ext['trace_id']}").json()
    assert trace["format"] == "deliberate-trace/2" and trace["meta"]["answer"] == choice["message"]["content"]
    assert trace["meta"]["serve"]["trace_id"] == ext["trace_id"]


def test_no_answer_in_the_budget_is_a_length_reply_not_an_error(url: str) -> None:
    data = chat(url, UNSOLVABLE).json()  # every move tried, none makes 24: "complete"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["choices"][0]["message"]["content"] is None
    assert data["deliberate"]["stop_reason"] == "complete" and not data["deliberate"]["solved"]
    assert data["deliberate"]["answers"] == {}  # every final state failed the check: none to give


def test_the_token_cap_stops_the_search(url: str) -> None:
    started = time.monotonic()
    data = chat(url, GENERIC, think="5s", max_completion_tokens=20).json()
    assert time.monotonic() - started < 3  # far sooner than the 5 s it could think
    assert data["deliberate"]["stop_reason"] == "max_tokens"
    assert data["choices"][0]["finish_reason"] == "length"


def test_think_is_capped_and_reasoning_effort_sets_it(url: str) -> None:
    data = chat(url, think="1h").json()
    assert data["deliberate"]["think"] == 5.0  # the server's max_think
    data = chat(url, think=None, reasoning_effort="low").json()
    assert data["deliberate"]["think"] == 5.0  # low is 5 s by default


def test_earlier_messages_become_context_lines(url: str) -> None:
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."}, {"role": "user", "content": GENERIC}]  # fmt: skip
    data = chat(url, messages=messages, think="1s").json()
    question = httpx.get(f"{url}/v1/traces/{data['deliberate']['trace_id']}").json()["meta"]["question"]
    assert question == "Context: system: Answer briefly.\nContext: user: Hello\nContext: assistant: Hi.\n" + GENERIC


def test_a_completion_gives_the_answer_as_text(url: str) -> None:
    response = httpx.post(f"{url}/v1/completions", json={"model": "deliberate", "prompt": SOLVABLE, "think": 2}, timeout=30)
    data = response.json()
    assert data["object"] == "text_completion"
    assert game24_answer_ok(data["choices"][0]["text"], SOLVABLE)


def test_a_stream_sends_thoughts_then_the_answer_then_done(url: str) -> None:
    body = {"messages": [{"role": "user", "content": SOLVABLE}], "think": "2s", "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = sse_data(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    first = chunks[0]
    assert first["choices"][0]["delta"]["role"] == "assistant" and first["deliberate"]["trace_id"]
    kinds = []
    for c in chunks[1:]:
        delta = c["choices"][0]["delta"] if c["choices"] else {}
        kinds.append("reasoning" if "reasoning_content" in delta else "content" if delta.get("content") else
                     "finish" if c["choices"] and c["choices"][0]["finish_reason"] else "usage" if "usage" in c else "?")  # fmt: skip
    assert kinds[0] == "reasoning" and kinds[-3:] == ["content", "finish", "usage"]
    assert set(kinds[:-3]) == {"reasoning"}  # every thought before the answer
    lines = [c["choices"][0]["delta"]["reasoning_content"] for c in chunks[1:-3]]
    assert all(line.endswith("\n") and "[depth " in line and "value " in line for line in lines)
    assert any("solved" in line for line in lines)
    answer = chunks[-3]["choices"][0]["delta"]["content"]
    assert game24_answer_ok(answer, SOLVABLE)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["deliberate"]["stop_reason"] == "solved"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_completion_stream_carries_text_and_reasoning(url: str) -> None:
    body = {"prompt": SOLVABLE, "think": "2s", "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as response:
        data = sse_data(response)
    chunks = [json.loads(d) for d in data[:-1]]
    assert data[-1] == "[DONE]" and all(c["object"] == "text_completion" for c in chunks)
    assert any("reasoning_content" in c["choices"][0] for c in chunks)
    assert game24_answer_ok("".join(c["choices"][0]["text"] for c in chunks), SOLVABLE)


# -- traces and pages -----------------------------------------------------------------------------


def test_trace_events_stream_and_pages(url: str) -> None:
    trace_id = chat(url).json()["deliberate"]["trace_id"]
    with httpx.stream("GET", f"{url}/v1/traces/{trace_id}/events", timeout=30) as response:
        lines = list(response.iter_lines())
    names = [line[6:].strip() for line in lines if line.startswith("event:")]
    assert names[-1] == "trace" and set(names[:-1]) == {"event"} and len(names) > 3
    events = [json.loads(line[5:]) for line in lines if line.startswith("data:")][:-1]
    assert events[-1]["type"] == "answer" and any(e["type"] == "expand" for e in events)
    index = httpx.get(f"{url}/")
    assert f'href="/traces/{trace_id}/"' in index.text and "default-src 'none'" in index.headers["content-security-policy"]
    moved = httpx.get(f"{url}/traces/{trace_id}")  # the page reads "events" beside itself: keep the slash
    assert moved.status_code == 307 and moved.headers["location"] == f"/traces/{trace_id}/"
    page = httpx.get(f"{url}/traces/{trace_id}", follow_redirects=True).text
    assert "<html" in page.lower() and "deliberate-trace/2" in page  # the static viewer with its trace
    assert_error(httpx.get(f"{url}/v1/traces/nope"), 404, "id")


def test_a_running_search_has_a_live_page_and_a_202_trace(url: str) -> None:
    # The search is streamed, and the stream is held open while the page and the trace
    # are read: it runs for its 5 s unless the client goes, so however slow the machine,
    # it cannot end before the checks (a 1.5 s search once did, on a loaded machine).
    body = {"messages": [{"role": "user", "content": GENERIC}], "think": "5s", "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data:"))
        trace_id = response.headers["x-deliberate-trace"]
        assert json.loads(first[5:])["deliberate"]["trace_id"] == trace_id
        [entry] = [line for line in httpx.get(f"{url}/").text.split("<tr>") if "running" in line]
        assert entry.split('href="/traces/')[1].split("/")[0] == trace_id
        assert httpx.get(f"{url}/v1/traces/{trace_id}").status_code == 202
        page = httpx.get(f"{url}/traces/{trace_id}/").text
        assert 'EventSource("events")' in page  # the live viewer, fed from /traces/ID/events
    # The client left: the search ends and its trace is complete.
    wait_for(lambda: httpx.get(f"{url}/v1/traces/{trace_id}").status_code == 200)


# -- load and disconnects -----------------------------------------------------------------------


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_above_max_concurrent_the_server_says_503_with_retry_after() -> None:
    with serving(ServeConfig(max_concurrent=1, limits=Limits(think=3.0))) as base:
        worker = threading.Thread(target=chat, args=(base, GENERIC), kwargs={"think": "3s"})
        worker.start()
        wait_for(lambda: httpx.get(f"{base}/health").json()["in_flight"] == 1)
        response = chat(base)
        error = assert_error(response, 503, None)
        assert error["type"] == "server_busy" and int(response.headers["retry-after"]) >= 1
        worker.join(timeout=30)
        assert chat(base).status_code == 200  # a slot is free again


def test_a_client_that_disconnects_cancels_its_search(url: str) -> None:
    body = {"messages": [{"role": "user", "content": GENERIC}], "think": "5s", "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        next(response.iter_lines())  # the first chunk: the search is running
        assert httpx.get(f"{url}/health").json()["in_flight"] == 1
    gone = time.monotonic()
    wait_for(lambda: httpx.get(f"{url}/health").json()["in_flight"] == 0, timeout=3)
    assert time.monotonic() - gone < 1.5  # cancelled, not run to its 5 s
    trace_id = response.headers["x-deliberate-trace"]
    assert httpx.get(f"{url}/v1/traces/{trace_id}").json()["meta"]["stop_reason"] == "interrupted"


def test_the_readme_snippet_runs_against_the_app(url: str) -> None:
    """The README's client snippet, exactly as written (test_serve_real runs it on the real model)."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("openai", reason="the snippet uses the openai client")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"```python\n(.*?)```", readme.split("## Serving", 1)[1].split("\n## ", 1)[0], re.DOTALL)
    env = {**os.environ, "OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "none"}
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("thought: [depth 1")
    assert lines[-1].startswith("answer: ") and game24_answer_ok(lines[-1][len("answer: "):], "1 1 11 11")
    assert all(line.startswith("thought: ") for line in lines[:-1])


def test_the_store_keeps_the_newest_traces_but_never_drops_a_running_one() -> None:
    from deliberate.serve.store import Entry, TraceStore

    store = TraceStore(keep=3)
    running = Entry("still thinking", None)
    store.add(running)
    for i in range(3):
        entry = Entry(f"q{i}", None)
        store.add(entry)
        entry.finish({"format": "deliberate-trace/1"}, {"stop_reason": "solved"})
    store.add(Entry("new", None))
    kept = [e.question for e in store.recent()]
    assert kept == ["new", "q2", "still thinking"]  # q0 and q1 went; the oldest, running, stays


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--host", "0.0.0.0"], "--api-key"),
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--think", "10m", "--max-think", "5m"], "longer than --max-think"),
        (["--effort", "huge=3s"], "--effort takes low, medium or high"),
    ],
)
def test_serve_usage_errors_are_one_line_and_exit_2(args: list[str], says: str) -> None:
    from helpers_real import run_cli

    run = run_cli("serve", *args, timeout=60)  # each fails before any model loads
    assert run.code == 2 and len(run.error_lines()) == 1 and says in run.stderr


def test_a_non_streaming_client_that_gives_up_cancels_its_search(url: str) -> None:
    body = {"messages": [{"role": "user", "content": GENERIC}], "think": "5s"}
    with pytest.raises(httpx.ReadTimeout):  # the client stops waiting and closes the connection
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(10, read=0.5))
    gone = time.monotonic()
    wait_for(lambda: httpx.get(f"{url}/health").json()["in_flight"] == 0, timeout=3)
    assert time.monotonic() - gone < 1.5  # cancelled, not run to its 5 s
