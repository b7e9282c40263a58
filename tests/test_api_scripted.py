"""``deliberate.think`` end to end on a scripted model: events, results, errors, Ctrl-C."""

from __future__ import annotations

import dataclasses

import pytest

import deliberate
from conftest import SOLVABLE, Game24Responder, GenericResponder, game24_answer_ok, generic_scorer, think_guarded
from deliberate.api import Result, Stats
from deliberate.clock import Deadline
from deliberate.errors import DurationError, QuestionError, UnknownNameError, UsageError
from deliberate.graph import ThoughtGraph
from deliberate.search import FINISH_ON_INTERRUPT


def test_think_is_exported_lazily():
    assert deliberate.think is deliberate.api.think
    assert deliberate.Result is Result
    with pytest.raises(AttributeError):
        deliberate.no_such_name  # noqa: B018


def test_events_stream_in_order_while_the_search_runs(game24_backend, fake_clock):
    backend = game24_backend()
    seen: list[dict] = []
    calls_at_event: list[int] = []

    def on_event(event: dict) -> None:
        assert event["t"] <= fake_clock.now() + 1e-4  # an event is never from the future
        seen.append(event)
        calls_at_event.append(len(backend.history))

    result = think_guarded(SOLVABLE, backend, task="game24", strategy="bfs", think=20, seed=1, on_event=on_event)
    assert seen == result.trace["events"]
    assert [e["t"] for e in seen] == sorted(e["t"] for e in seen)
    # Streamed, not replayed at the end: the first event came before the last model call.
    assert calls_at_event[0] < len(backend.history)
    assert seen[-1]["type"] == "answer" and seen[-1]["answer"] == result.answer
    assert {"expand", "evaluate", "verify", "answer"} <= {e["type"] for e in seen}


def test_result_fields_agree_with_the_trace_and_the_backend(game24_backend):
    backend = game24_backend()
    result = think_guarded(SOLVABLE, backend, task="game24", strategy="bfs", think=20, seed=1)
    assert isinstance(result, Result) and isinstance(result.graph, ThoughtGraph) and isinstance(result.stats, Stats)
    assert game24_answer_ok(result.answer, SOLVABLE) and result.solved
    stats, events = result.stats, result.trace["events"]
    assert stats.stop_reason == "solved"
    assert stats.nodes == len(result.graph)
    assert stats.tokens == backend.stats.completion_tokens == sum(e["tokens"] for e in events if e["type"] == "expand")
    assert stats.prompt_tokens == backend.stats.prompt_tokens
    assert stats.expansions == sum(len(e["nodes"]) for e in events if e["type"] == "expand")
    assert stats.evaluations == sum(len(e["nodes"]) for e in events if e["type"] == "evaluate")
    assert stats.merged == sum(len(result.graph[n]["aliases"]) for n in result.graph)
    assert stats.thinking_seconds == pytest.approx(backend.clock.now(), abs=1e-4)
    assert stats.tokens_per_second == pytest.approx(stats.tokens / stats.thinking_seconds, rel=1e-2)
    assert result.trace["meta"]["stats"] == dataclasses.asdict(stats)
    meta = result.trace["meta"]
    assert meta["backend"] == backend.describe() and meta["model"] == "scripted" and meta["model_sha256"] is None
    assert meta["budget"] == {"think": 20.0, "max_nodes": None, "reserve": 0.1}
    assert meta["config"]["verifier"] is True and meta["deliberate"] == deliberate.__version__
    assert not backend.closed  # a backend object passed in is the caller's to close


def test_think_accepts_a_duration_string_and_auto_detects_the_task(game24_backend, fake_clock):
    result = think_guarded(SOLVABLE, game24_backend(), think="500ms", seed=1)
    assert result.trace["meta"]["task"] == "game24" and result.trace["meta"]["strategy"] == "bfs"
    assert result.trace["meta"]["budget"]["think"] == 0.5
    assert fake_clock.now() <= 0.5


def test_without_the_verifier_game24_answers_are_unverified(game24_backend):
    result = think_guarded(SOLVABLE, game24_backend(error_rate=0.5), task="game24", strategy="bfs", think=0.5, seed=1, verifier=False)
    assert result.graph.with_status("terminal")  # finished states, left unjudged
    assert not result.graph.with_status("solved") and not result.graph.with_status("failed")
    assert not result.solved
    assert not [e for e in result.trace["events"] if e["type"] == "verify"]


def test_chat_prompts_go_through_the_backend_template(scripted):
    responder = GenericResponder(steps=1, accuracy=1.0)
    backend = scripted(responder, scores=generic_scorer)
    result = think_guarded("What is six times seven?", backend, task="generic", strategy="cot", think=5, chat=True)
    assert result.answer == "42"
    assert all(prompt.startswith("<user>") for _, prompt in backend.history)


# -- errors before any thinking -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"question": "   "}, QuestionError, "empty"),
        ({"question": "Use 1 2 to make 24.", "task": "game24"}, QuestionError, "four numbers"),
        ({"think": None}, DurationError, "max_nodes"),
        ({"think": "soon"}, DurationError, "soon"),
        ({"max_nodes": 0}, UsageError, "max_nodes"),
        ({"evaluator": "gut"}, UsageError, "evaluator"),
        ({"mode": "guess"}, UsageError, "mode"),
        ({"task": "chess"}, UnknownNameError, r"^unknown task 'chess' \(tasks: auto, generic, game24, math"),
        ({"strategy": "astar"}, UnknownNameError, "astar"),
        ({"options": ["breadth"]}, UsageError, "key=value"),
    ],
)
def test_bad_requests_fail_before_the_model_is_used(kwargs, error, message, game24_backend):
    backend = game24_backend()
    arguments = {"question": SOLVABLE, "strategy": "bfs", "think": 5, **kwargs}
    with pytest.raises(error, match=message) as caught:
        deliberate.think(model=backend, **arguments)
    assert caught.value.exit_code == 2
    assert backend.history == []


# -- Ctrl-C and cancellation ----------------------------------------------------------------------------


class InterruptAfter:
    """A responder that plays normally, then raises KeyboardInterrupt once, at call ``n``."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.calls, self.raised = inner, n, 0, False

    def __call__(self, prompt, request, seed):
        self.calls += 1
        if self.calls == self.n and not self.raised:
            self.raised = True
            raise KeyboardInterrupt
        return self.inner(prompt, request, seed)


def test_ctrl_c_keeps_the_best_answer_so_far(scripted, tmp_path):
    # Eight first steps, then five of them expanded (40 calls) give answers; call 55 is later.
    responder = InterruptAfter(GenericResponder(steps=1, accuracy=1.0, variety=50), n=55)
    backend = scripted(responder, scores=generic_scorer)
    path = tmp_path / "interrupted.json"
    result = think_guarded("What is six times seven?", backend, task="generic", strategy="bfs", think=60, seed=1, trace=path)
    assert responder.raised
    assert result.stats.stop_reason == "interrupted"
    assert result.answer == "42"
    assert "finish" not in [e["type"] for e in result.trace["events"]]  # found before the interrupt
    assert result.trace["events"][-1]["reason"] == "interrupted"
    assert deliberate.api.read_trace(path)["meta"]["stop_reason"] == "interrupted"  # the trace is still written
    assert result.stats.thinking_seconds < 60


def test_ctrl_c_before_any_answer_finishes_greedily_for_a_moment(scripted):
    responder = InterruptAfter(GenericResponder(steps=3, accuracy=1.0, variety=50), n=6)
    backend = scripted(responder, scores=generic_scorer, seconds_per_token=0.01)
    result = think_guarded("What is six times seven?", backend, task="generic", strategy="bfs", think=60, seed=1)
    assert result.stats.stop_reason == "interrupted"
    events = result.trace["events"]
    finish = [e for e in events if e["type"] == "finish"]
    assert len(finish) == 1
    # After Ctrl-C only a short greedy finish is allowed, never the rest of the budget.
    assert result.stats.thinking_seconds <= finish[0]["t"] + FINISH_ON_INTERRUPT + 1e-4
    assert result.answer == "42"


def test_the_finish_after_ctrl_c_is_counted_from_the_signal(scripted, fake_clock):
    # The signal lands while a model call is in flight, and that call runs on for
    # 0.2 s before it returns. The greedy finish may only use what is left of
    # FINISH_ON_INTERRUPT after the signal, not a fresh allowance from the return.
    deadline = Deadline.after(60, fake_clock)
    inner = GenericResponder(steps=3, accuracy=1.0, variety=50)
    signalled = []

    class SignalMidCall:
        calls = 0

        def __call__(self, prompt, request, seed):
            self.calls += 1
            if self.calls == 6:
                deadline.cancel()
                signalled.append(fake_clock.now())
                fake_clock.advance(0.2)  # most of FINISH_ON_INTERRUPT
            if signalled:  # from now on, rambling that never reaches an answer
                return "and then I kept on thinking about it " * 40
            return inner(prompt, request, seed)

    backend = scripted(SignalMidCall(), scores=generic_scorer, seconds_per_token=0.01)
    result = think_guarded("What is six times seven?", backend, task="generic", strategy="bfs", deadline=deadline, seed=1)
    assert result.stats.stop_reason == "interrupted"
    assert [e["type"] for e in result.trace["events"]].count("finish") == 1
    assert result.stats.thinking_seconds <= signalled[0] + FINISH_ON_INTERRUPT + 1e-4


def test_ctrl_c_during_the_finish_still_returns(scripted):
    class AlwaysInterrupt:
        def __call__(self, prompt, request, seed):
            raise KeyboardInterrupt

    backend = scripted(AlwaysInterrupt(), scores=generic_scorer)
    result = think_guarded("Why?", backend, task="generic", strategy="bfs", think=60, seed=1)
    assert result.stats.stop_reason == "interrupted"
    assert result.answer is None and len(result.graph) == 1
    assert result.trace["events"][-1]["type"] == "answer"


def test_a_caller_can_cancel_through_the_deadline(game24_backend, fake_clock):
    deadline = Deadline(fake_clock)
    inner = Game24Responder()
    calls = []

    def cancel_on_the_tenth(prompt, request, seed):
        calls.append(seed)
        if len(calls) == 10:
            deadline.cancel()  # what the CLI's SIGINT handler does
        return inner(prompt, request, seed)

    backend = game24_backend()
    backend.respond = cancel_on_the_tenth
    result = think_guarded("Use 1 1 1 1 to make 24.", backend, task="game24", strategy="bfs", think=60, seed=1, deadline=deadline)
    assert result.stats.stop_reason == "interrupted"
    assert result.stats.thinking_seconds <= 60
    assert deadline.cancelled


def test_a_caller_deadline_is_shortened_by_the_budget_but_not_changed(game24_backend, fake_clock):
    deadline = Deadline(fake_clock, at=100.0)
    result = think_guarded("Use 1 1 1 1 to make 24.", game24_backend(), task="game24", strategy="mcts", think=0.5, deadline=deadline)
    assert result.stats.thinking_seconds <= 0.5 + 1e-4  # the budget, not the caller's 100 s
    assert deadline.at == 100.0  # the caller's object is the caller's


# -- think()'s options as one object --------------------------------------------------------


def test_settings_as_one_object_or_keywords_give_the_same_search(game24_backend):
    from deliberate.api import ThinkOptions

    by_keywords = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy="bfs", think=20, seed=4)
    by_object = think_guarded(SOLVABLE, game24_backend(), settings=ThinkOptions(task="game24", strategy="bfs", think=20, seed=4))
    by_dict = think_guarded(SOLVABLE, game24_backend(), settings={"task": "game24", "strategy": "bfs", "think": "20s", "seed": 4})
    assert by_keywords.answer == by_object.answer == by_dict.answer
    assert by_keywords.trace["graph"] == by_object.trace["graph"] == by_dict.trace["graph"]


def test_keywords_win_over_settings(game24_backend):
    result = think_guarded(SOLVABLE, game24_backend(), settings={"task": "game24", "strategy": "bfs", "seed": 1}, strategy="dfs")
    assert result.trace["meta"]["strategy"] == "dfs" and result.trace["meta"]["seed"] == 1


@pytest.mark.parametrize("where", ["keyword", "settings"])
def test_an_unknown_setting_is_an_error_that_lists_the_known_ones(game24_backend, where):
    kwargs = {"thinkk": 5} if where == "keyword" else {"settings": {"thinkk": 5}}
    with pytest.raises(UnknownNameError) as caught:
        deliberate.think(SOLVABLE, model=game24_backend(), **kwargs)
    message = str(caught.value)
    assert "unknown option 'thinkk' for think()" in message
    for known in ("think", "strategy", "task", "max_nodes", "resume"):
        assert known in message


def test_one_loaded_model_serves_many_searches_and_closes_with_its_block(game24_backend):
    assert deliberate.load is deliberate.api.load
    with deliberate.load(game24_backend()) as backend:  # a backend object is used as it is
        results = [think_guarded(SOLVABLE, backend, task="game24", think=20, seed=seed) for seed in (1, 2)]
        assert not backend.closed  # think leaves a model it did not open alone
    assert backend.closed
    for result in results:
        assert game24_answer_ok(result.answer, SOLVABLE)
        events = result.trace["events"]
        # each result counts its own search, not the backend's running totals
        assert result.stats.tokens == sum(e["tokens"] for e in events if e["type"] == "expand")
    assert sum(r.stats.tokens for r in results) == backend.stats.completion_tokens
    assert sum(r.stats.prompt_tokens for r in results) == backend.stats.prompt_tokens
