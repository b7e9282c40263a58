"""The OpenAI-compatible server backend: against a fake server in-process, then a real one.

The fake is an ``httpx.MockTransport`` handler; its latency moves a ``FakeClock``, so
deadline tests are exact. Tests marked ``server`` start a real llama_cpp.server once.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from deliberate.backends.base import Backend, GenerateRequest, derive_seed
from deliberate.backends.server import ServerBackend, label_logprobs, sampled_label_logprobs
from deliberate.clock import Deadline, FakeClock
from deliberate.errors import BackendError, ServerError
from llama_server import LlamaServer, free_port

LABELS = (" sure", " likely", " impossible")
URL = "http://fake.test/v1"


class FakeServer:
    """An OpenAI-compatible server in a function: ``httpx.MockTransport(FakeServer(...))``.

    ``failures`` are error statuses answered, in order, before anything succeeds.
    ``honour_n=False`` answers one choice whatever ``n`` is (as llama_cpp.server does);
    ``refuse_n`` answers 400 to ``n > 1`` (as older llama-server does). ``logprobs`` is
    the shape of its log-probs: "legacy", "llama-server", None (null) or "error" (400).
    ``latency`` fake seconds pass per completion; longer than the request's timeout, the
    fake clock moves by the timeout and the request times out, as over a real socket.
    """

    def __init__(
        self,
        *,
        clock: FakeClock | None = None,
        latency: float = 0.0,
        failures: tuple[int, ...] = (),
        honour_n: bool = True,
        refuse_n: bool = False,
        logprobs: str | None = "legacy",
        top: dict[str, float] | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.latency = latency
        self.failures = list(failures)
        self.honour_n = honour_n
        self.refuse_n = refuse_n
        self.logprobs = logprobs
        self.top = top or {" sure": -0.5, " likely": -1.5, "\n": -2.0}
        self.queue: list[str] = []  # texts of the next choices, in order; then "text for seed S"
        self.calls: list[dict[str, Any]] = []  # bodies of POST /completions
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "fake-model"}]})
        if not path.endswith("/completions"):
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        with self._lock:
            self.calls.append(body)
            status = self.failures.pop(0) if self.failures else 200
            if status == 200 and self.latency:
                timeout = request.extensions["timeout"]["read"]
                self.clock.advance(min(self.latency, timeout))
                if self.latency > timeout:
                    raise httpx.ReadTimeout("fake: the model is slow", request=request)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": f"fake failure {status}"}})
        n = body.get("n", 1)
        if n > 1 and self.refuse_n:
            return httpx.Response(400, json={"error": {"message": "Only one completion choice is allowed"}})
        if "logprobs" in body:
            return self._logprobs_reply()
        with self._lock:
            default = f"text for seed {body['seed']}"
            texts = [self.queue.pop(0) if self.queue else default for _ in range(n if self.honour_n else 1)]
        choices = [{"index": i, "text": text, "finish_reason": "length"} for i, text in enumerate(texts)]
        usage = {"prompt_tokens": 5, "completion_tokens": 4 * n}
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    def _logprobs_reply(self) -> httpx.Response:
        if self.logprobs == "error":
            return httpx.Response(400, json={"error": {"message": "logprobs are not supported"}})
        first = max(self.top, key=self.top.__getitem__)
        if self.logprobs == "legacy":
            logprobs: Any = {"tokens": [first], "top_logprobs": [self.top]}
        elif self.logprobs == "llama-server":
            entries = [{"token": t, "logprob": lp} for t, lp in self.top.items()]
            logprobs = {"content": [{"token": first, "logprob": self.top[first], "top_logprobs": entries}]}
        else:
            logprobs = None
        choice = {"index": 0, "text": first, "logprobs": logprobs, "finish_reason": "length"}
        usage = {"prompt_tokens": 5, "completion_tokens": 1}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})


def make(fake: FakeServer, **options: Any) -> ServerBackend:
    # Back-off sleeps move the fake clock, so retry tests are instant and exact.
    return ServerBackend(URL, transport=httpx.MockTransport(fake), sleep=fake.clock.advance, **options)


def deadline_for(fake: FakeServer, seconds: float | None = None) -> Deadline:
    return Deadline.after(seconds, fake.clock)


# -- protocol, retries and errors ------------------------------------------------


def test_is_a_backend_and_picks_the_listed_model() -> None:
    backend = make(FakeServer())
    assert isinstance(backend, Backend)
    assert backend.describe() == {
        "backend": "server",
        "url": URL,
        "model": "fake-model",
        "label_scoring": "logprobs",
        "n_fallback": False,
    }


def test_request_carries_the_sampling_parameters() -> None:
    fake = FakeServer()
    request = GenerateRequest("Q:", max_tokens=7, stop=("\n",), temperature=0.7, top_k=20, top_p=0.9, seed=3)
    [[sample]] = make(fake).generate([request], deadline_for(fake))
    [body] = fake.calls
    assert body["prompt"] == "Q:" and body["model"] == "fake-model" and body["n"] == 1
    assert (body["max_tokens"], body["stop"], body["temperature"]) == (7, ["\n"], 0.7)
    assert (body["top_k"], body["top_p"], body["seed"]) == (20, 0.9, derive_seed(3, 0))
    assert (sample.prompt_tokens, sample.completion_tokens, sample.finish_reason) == (5, 4, "length")


def test_retries_503_then_succeeds() -> None:
    fake = FakeServer(failures=(503, 503))
    [[sample]] = make(fake).generate([GenerateRequest("Q:")], deadline_for(fake))
    assert sample.text.startswith("text for seed") and len(fake.calls) == 3


def test_retries_429_too() -> None:
    fake = FakeServer(failures=(429,))
    [[sample]] = make(fake).generate([GenerateRequest("Q:")], deadline_for(fake))
    assert sample.finish_reason == "length" and len(fake.calls) == 2


def test_gives_up_after_max_retries_with_the_servers_message() -> None:
    fake = FakeServer(failures=(500,) * 10)
    with pytest.raises(ServerError, match="answered 500: fake failure 500"):
        make(fake, max_retries=3).generate([GenerateRequest("Q:")], deadline_for(fake))
    assert len(fake.calls) == 3


def test_no_retry_on_400() -> None:
    fake = FakeServer(failures=(400,))
    with pytest.raises(ServerError, match="fake failure 400"):
        make(fake).generate([GenerateRequest("Q:")], deadline_for(fake))
    assert len(fake.calls) == 1


def test_unreachable_server_is_one_line() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ServerError) as caught:
        ServerBackend(f"http://127.0.0.1:{port}/v1")
    url = f"http://127.0.0.1:{port}/v1"
    assert str(caught.value) == f"cannot reach the model server at {url}: connection refused"


def test_base_url_without_v1_is_completed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        return httpx.Response(404)

    backend = ServerBackend("http://fake.test:8080/", transport=httpx.MockTransport(handler))
    assert backend.base_url == "http://fake.test:8080/v1"


def test_context_overflow_becomes_a_context_sample() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        message = "This model's maximum context length is 2048 tokens, however you requested 3006 tokens"
        return httpx.Response(400, json={"error": {"message": message, "code": "context_length_exceeded"}})

    backend = ServerBackend(URL, transport=httpx.MockTransport(handler))
    [[sample]] = backend.generate([GenerateRequest("long " * 3000)], Deadline.after(10))
    assert sample.finish_reason == "context"
    assert backend.score_labels(["long"], LABELS, Deadline.after(10)) == [{}]


# -- the deadline ----------------------------------------------------------------


def test_slow_server_is_cut_off_at_the_deadline() -> None:
    fake = FakeServer(latency=5.0)
    deadline = deadline_for(fake, 2.0)
    [samples] = make(fake).generate([GenerateRequest("Q:", n=2)], deadline)
    assert [s.finish_reason for s in samples] == ["deadline", "deadline"]
    assert [s.text for s in samples] == ["", ""]
    assert fake.clock.now() == pytest.approx(2.0)  # waited exactly until the deadline
    assert len(fake.calls) == 1  # and did not retry after it


def test_retries_never_sleep_past_the_deadline() -> None:
    fake = FakeServer(failures=(503,) * 100)
    deadline = deadline_for(fake, 1.0)
    [[sample]] = make(fake, max_retries=100).generate([GenerateRequest("Q:")], deadline)
    assert sample.finish_reason == "deadline"
    assert fake.clock.now() <= 1.0
    assert 1 < len(fake.calls) < 100


def test_expired_deadline_sends_nothing() -> None:
    fake = FakeServer()
    deadline = deadline_for(fake, 0.0)
    backend = make(fake)
    assert backend.generate([GenerateRequest("Q:")], deadline)[0][0].finish_reason == "deadline"
    assert backend.score_labels(["Q:"], LABELS, deadline) == [{}]
    assert fake.calls == []


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that lists a model at once but never answers a POST."""
    release = threading.Event()

    class Hanging(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"data": [{"id": "slow"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            release.wait(timeout=10)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_real_socket_timeout_respects_the_deadline(hanging_url: str) -> None:
    backend = ServerBackend(hanging_url, timeout=30)
    try:
        deadline = Deadline.after(0.5)
        [[sample]] = backend.generate([GenerateRequest("Q:")], deadline)
        assert sample.finish_reason == "deadline"
        assert deadline.clock.now() - deadline.at < 0.3  # back within 0.3 s of the deadline
    finally:
        backend.close()


def test_ctrl_c_returns_at_once_while_a_request_hangs(hanging_url: str) -> None:
    backend = ServerBackend(hanging_url, timeout=30)
    deadline = Deadline.after(30)
    threading.Timer(0.3, deadline.cancel).start()  # what the CLI's SIGINT handler does
    try:
        results = backend.generate([GenerateRequest("Q:", n=2)], deadline)
        assert [s.finish_reason for s in results[0]] == ["deadline", "deadline"]
        assert backend.score_labels(["Q:"], LABELS, deadline) == [{}]
        assert deadline.clock.now() - (deadline.at - 30) < 1.0
    finally:
        backend.close()


# -- n > 1 ---------------------------------------------------------------------


def test_native_n_is_one_request() -> None:
    fake = FakeServer()
    backend = make(fake)
    [samples] = backend.generate([GenerateRequest("Q:", n=3)], deadline_for(fake))
    assert len(samples) == 3 and len(fake.calls) == 1
    assert [s.completion_tokens for s in samples] == [4, 4, 4]  # usage shared out among choices
    assert backend.stats.completion_tokens == 12 and not backend.describe()["n_fallback"]


@pytest.mark.parametrize("options", [{"honour_n": False}, {"refuse_n": True}])
def test_n_fallback_asks_one_sample_at_a_time(options: dict[str, bool]) -> None:
    fake = FakeServer(**options)
    backend = make(fake)
    requests = [GenerateRequest("A", n=3, seed=7), GenerateRequest("B", n=1, seed=8)]
    results = backend.generate(requests, deadline_for(fake))
    assert [len(samples) for samples in results] == [3, 1]
    seeds = [derive_seed(7, i) for i in range(3)]
    assert {c["seed"] for c in fake.calls if c["prompt"] == "A"} == set(seeds)
    assert [s.text for s in results[0]] == [f"text for seed {seed}" for seed in seeds]
    assert backend.stats.extra["n_fallback"] and backend.describe()["n_fallback"]
    fake.calls.clear()  # remembered: the next call asks one at a time from the start
    backend.generate([GenerateRequest("A", n=3, seed=7)], deadline_for(fake))
    assert [c["n"] for c in fake.calls] == [1, 1, 1]


# -- label scoring ---------------------------------------------------------------


@pytest.mark.parametrize("shape", ["legacy", "llama-server"])
def test_logprobs_scoring(shape: str) -> None:
    fake = FakeServer(logprobs=shape, top={" sure": -0.5, "likely": -1.5, "\n": -2.0})
    backend = make(fake)
    [scores] = backend.score_labels(["Q:"], LABELS, deadline_for(fake))
    # " likely" matches "likely" by stripped text; " impossible" is absent: floor below the smallest.
    assert scores == {" sure": -0.5, " likely": -1.5, " impossible": pytest.approx(-2.0 - math.log(2))}
    [body] = fake.calls
    assert (body["max_tokens"], body["temperature"], body["logprobs"]) == (1, 0.0, 20)
    assert backend.stats.scored_prompts == 1 and backend.describe()["label_scoring"] == "logprobs"


def test_label_logprobs_prefers_the_exact_token() -> None:
    assert label_logprobs({"sure": -0.1, " sure": -3.0, "x": -4.0}, [" sure"]) == {" sure": -3.0}


@pytest.mark.parametrize("logprobs", [None, "error"])
def test_sampled_scoring_when_the_server_gives_no_logprobs(logprobs: str | None) -> None:
    fake = FakeServer(logprobs=logprobs, honour_n=False)
    backend = make(fake, label_samples=4)
    fake.queue += [" sure", " sure thing", " likely", " maybe"]
    [scores] = backend.score_labels(["Q:"], LABELS, deadline_for(fake))
    assert scores[" sure"] == pytest.approx(math.log(3 / 7))  # (2 + 1) / (4 samples + 3 labels)
    assert scores[" likely"] == pytest.approx(math.log(2 / 7))
    assert scores[" impossible"] == pytest.approx(math.log(1 / 7))
    assert [c["temperature"] for c in fake.calls[1:]] == [1.0] * 4
    assert backend.describe()["label_scoring"] == "sampled"
    fake.calls.clear()  # remembered: logprobs are not asked for again
    backend.score_labels(["Q:"], LABELS, deadline_for(fake))
    assert fake.calls and all("logprobs" not in c for c in fake.calls)


def test_sampled_label_logprobs_counts_whole_words() -> None:
    scores = sampled_label_logprobs([" sure.", " surely", " impossible"], [" sure", " impossible"])
    assert scores == {" sure": pytest.approx(math.log(2 / 5)), " impossible": pytest.approx(math.log(2 / 5))}


# -- chat templates ------------------------------------------------------------------


def test_format_chat_uses_apply_template() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        assert request.url.path == "/apply-template"
        messages = json.loads(request.content)["messages"]
        return httpx.Response(200, json={"prompt": f"<user>{messages[0]['content']}<assistant>"})

    backend = ServerBackend(URL, transport=httpx.MockTransport(handler))
    assert backend.format_chat([{"role": "user", "content": "hi"}]) == "<user>hi<assistant>"


def test_format_chat_without_the_endpoint() -> None:
    backend = make(FakeServer())
    with pytest.raises(BackendError, match="cannot render chat templates"):
        backend.format_chat([{"role": "user", "content": "hi"}])


# -- a real llama_cpp.server -------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LlamaServer]:
    with LlamaServer() as server:
        yield server


@pytest.fixture
def real_backend(llama_server: LlamaServer) -> Iterator[ServerBackend]:
    backend = ServerBackend(llama_server.url, timeout=120)  # generous: the CPU may be shared
    yield backend
    backend.close()


@pytest.mark.server
def test_real_generate_n2_with_stop(real_backend: ServerBackend) -> None:
    prompt = "The capital of France is"
    request = GenerateRequest(prompt, n=2, max_tokens=8, stop=(".", "\n"), temperature=1.0)
    [samples] = real_backend.generate([request], Deadline.after(120))
    assert len(samples) == 2
    for sample in samples:
        assert "." not in sample.text and "\n" not in sample.text
        assert sample.finish_reason in ("stop", "length") and 0 < sample.prompt_tokens
        assert sample.completion_tokens <= 8
    assert real_backend.describe()["n_fallback"]  # llama_cpp.server answers one choice only


@pytest.mark.server
def test_real_score_labels_are_finite_logprobs(real_backend: ServerBackend) -> None:
    # Few-shot, so that all three labels are among the model's top 20 next tokens.
    prompt = (
        "Answer sure, likely or impossible.\nQ: Is 2 + 2 = 4?\nA: sure\nQ: Is 1 + 1 = 3?\nA: impossible\n"
        "Q: Will it rain tomorrow?\nA: likely\nQ: Is 3 + 3 = 6?\nA:"
    )
    [scores] = real_backend.score_labels([prompt], LABELS, Deadline.after(120))
    assert set(scores) == set(LABELS)
    assert all(math.isfinite(value) and value < 0 for value in scores.values())
    assert len(set(scores.values())) == 3  # two labels missing from the top 20 would share the floor
    assert real_backend.describe()["label_scoring"] == "logprobs"


@pytest.mark.server
def test_real_server_killed_then_restarted(llama_server: LlamaServer, real_backend: ServerBackend) -> None:
    llama_server.kill()
    try:
        with pytest.raises(ServerError, match="cannot reach the model server"):
            real_backend.generate([GenerateRequest("Hi", max_tokens=2)], Deadline.after(5))
    finally:
        llama_server.restart()
    [[sample]] = real_backend.generate([GenerateRequest("Hi", max_tokens=2)], Deadline.after(120))
    assert sample.finish_reason in ("stop", "length")
