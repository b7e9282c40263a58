"""``deliberate serve`` as users run it: a real subprocess on 127.0.0.1 with the
embedded model, driven by the official ``openai`` client, raw httpx and curl.

Budgets are short (2-4 s) so the whole module stays near two minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers_real import THREADS, cli_command, cli_env, makes_24, open_model
from llama_server import free_port

openai = pytest.importorskip("openai", reason="the serve tests drive the server with the openai client")
pytest.importorskip("fastapi", reason="deliberate serve needs the server extra")

pytestmark = [pytest.mark.model, pytest.mark.server]

PUZZLE = "Use the numbers 1 1 11 11 and + - * / to make 24."
GENERIC = "Why is the sky blue?"  # never complete: a search runs until it is cancelled or its time is up
README = Path(__file__).resolve().parent.parent / "README.md"


class Served:
    """One ``deliberate serve`` subprocess; ``url`` is its base address."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="deliberate-serve-", suffix=".log")[1])
        command = cli_command("serve", "--port", str(self.port), "--threads", str(THREADS), *args)
        env = cli_env()
        env.pop("DELIBERATE_API_KEY", None)  # the key, if any, is the one given here
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        headers = {"Authorization": f"Bearer {args[args.index('--api-key') + 1]}"} if "--api-key" in args else {}
        end = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"deliberate serve exited:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < end, f"deliberate serve did not start:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/health", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)

    def health(self, **kwargs: Any) -> dict[str, Any]:
        return httpx.get(f"{self.url}/health", timeout=5, **kwargs).json()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = Served("--think", "3s", "--max-think", "20s", "--max-concurrent", "4")
    yield served
    served.stop()


@pytest.fixture(scope="module")
def client(server: Served) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=60)


def wait_for(condition: Any, timeout: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_per_request_deadlines_in_the_llama_backend() -> None:
    from deliberate.backends.base import GenerateRequest
    from deliberate.clock import Deadline

    backend = open_model()
    try:
        gone = Deadline.after(10)
        gone.cancel()
        requests = [GenerateRequest("The sky is", n=2, max_tokens=16, temperature=0.7, seed=1),
                    GenerateRequest("Water is", n=2, max_tokens=16, temperature=0.7, seed=2)]  # fmt: skip
        stopped, live = backend.generate(requests, Deadline.after(None), deadlines=[gone, Deadline.after(30)])
        assert all(s.finish_reason == "deadline" and s.completion_tokens == 0 for s in stopped)
        assert all(s.finish_reason in ("stop", "length") and s.completion_tokens > 0 for s in live)
        assert backend.live_sequences() == 0
    finally:
        backend.close()


def test_a_chat_completion(client: Any) -> None:
    reply = client.chat.completions.create(model="deliberate", messages=[{"role": "user", "content": PUZZLE}],
                                           extra_body={"think": "4s"})  # fmt: skip
    choice = reply.choices[0]
    ext = reply.model_extra["deliberate"]
    assert ext["trace_id"] and ext["nodes"] >= 1 and ext["thinking_seconds"] <= 4 + 0.5
    assert reply.usage.completion_tokens > 0
    assert reply.usage.completion_tokens_details.reasoning_tokens == reply.usage.completion_tokens
    if ext["stop_reason"] == "solved":
        assert choice.finish_reason == "stop" and makes_24(choice.message.content, [1, 1, 11, 11])
        assert getattr(choice.message, "reasoning_content").count("\n") == 2  # three steps to 24
    else:
        assert choice.finish_reason in ("stop", "length")
        assert (choice.message.content is None) == (choice.finish_reason == "length")


def test_a_stream_through_the_client_and_raw(server: Served, client: Any) -> None:
    kinds = []
    stream = client.chat.completions.create(model="deliberate/bfs", messages=[{"role": "user", "content": PUZZLE}],
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"think": "3s"})  # fmt: skip
    for chunk in stream:
        if not chunk.choices:
            kinds.append("usage")
            assert chunk.usage.completion_tokens > 0
            continue
        delta = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None):
            kinds.append("reasoning")
        elif delta.content:
            kinds.append("content")
        elif chunk.choices[0].finish_reason:
            kinds.append("finish")
    assert kinds[0] == "reasoning" and kinds[-2:] == ["finish", "usage"]
    assert "reasoning" not in kinds[kinds.index("content"):] if "content" in kinds else True
    body = {"messages": [{"role": "user", "content": PUZZLE}], "think": "2s", "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
        data = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]" and json.loads(data[0])["deliberate"]["trace_id"]


def test_a_completion(client: Any) -> None:
    reply = client.completions.create(model="deliberate", prompt="4 9 10 13", extra_body={"think": "3s"})
    assert reply.object == "text_completion"
    choice = reply.choices[0]
    if choice.finish_reason == "stop":
        assert makes_24(choice.text, [4, 9, 10, 13])


def test_four_requests_at_once_share_the_model(server: Served, client: Any) -> None:
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(server.health()["live_sequences"])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda i: client.chat.completions.create(
            model="deliberate", seed=i, messages=[{"role": "user", "content": f"Use {i + 1} 6 7 8 to make 24."}],
            extra_body={"think": "4s"}), range(4)))  # fmt: skip
    wall = time.monotonic() - started
    done.set()
    watcher.join()
    ext = [r.model_extra["deliberate"] for r in replies]
    assert len(ext) == 4
    assert all(e["thinking_seconds"] <= 4 + 0.5 for e in ext), [e["thinking_seconds"] for e in ext]
    # On one thread four fresh prompts take most of 4 s to prefill, so not every search
    # gets its first thoughts back; together they do.
    assert sum(e["nodes"] - 1 for e in ext) > 0
    assert wall < 2 * 4  # together, not one after another
    assert max(seen) > 0 and server.health() == {"status": "ok", "live_sequences": 0, "in_flight": 0}


def test_a_client_that_disconnects_frees_its_search_within_a_second(server: Served) -> None:
    body = {"messages": [{"role": "user", "content": GENERIC}], "think": "20s", "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        while "reasoning_content" not in next(lines):
            pass  # mid-search: thoughts are arriving
        assert server.health()["in_flight"] == 1
    took = wait_for(lambda: server.health() == {"status": "ok", "live_sequences": 0, "in_flight": 0}, timeout=5)
    assert took < 1.0


def test_bad_strategy_and_duration_are_400(client: Any) -> None:
    for kwargs, param in (({"model": "deliberate/nope"}, "model"), ({"extra_body": {"think": "abc"}}, "think")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**{"model": "deliberate", "messages": [{"role": "user", "content": PUZZLE}], **kwargs})
        assert caught.value.body["param"] == param  # the client unwraps {"error": {...}}


def test_a_key_guards_a_server_and_busy_means_503() -> None:
    keyed = Served("--api-key", "k3y", "--max-concurrent", "1", "--think", "3s")
    try:
        wrong = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="k3y", max_retries=0)
        assert "deliberate/mcts" in [m.id for m in right.models.list()]
        headers = {"Authorization": "Bearer k3y"}
        body = {"messages": [{"role": "user", "content": GENERIC}], "think": "3s"}
        first = threading.Thread(target=httpx.post, args=(f"{keyed.url}/v1/chat/completions",),
                                 kwargs={"json": body, "headers": headers, "timeout": 30})  # fmt: skip
        first.start()
        wait_for(lambda: keyed.health(headers=headers)["in_flight"] == 1, timeout=5)
        busy = httpx.post(f"{keyed.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
        first.join(timeout=30)
    finally:
        keyed.stop()


def test_curl_streams_the_reply(server: Served) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    body = json.dumps({"messages": [{"role": "user", "content": PUZZLE}], "think": "2s", "stream": True})
    done = subprocess.run(["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
                           f"{server.url}/v1/chat/completions"], capture_output=True, text=True, timeout=30)  # fmt: skip
    data = [line[5:].strip() for line in done.stdout.splitlines() if line.startswith("data:")]
    assert done.returncode == 0 and data[-1] == "[DONE]"
    assert any("reasoning_content" in d for d in data)


def test_the_readme_snippet_runs(server: Served) -> None:
    section = README.read_text(encoding="utf-8").split("## Serving", 1)[1].split("\n## ", 1)[0]
    [snippet] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    env = {**os.environ, "OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": "none"}
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and lines[0].startswith("thought:")
    answers = [i for i, line in enumerate(lines) if line.startswith("answer:")]
    assert all(i > 0 for i in answers) and len(answers) <= 1
