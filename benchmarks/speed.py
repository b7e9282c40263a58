"""``deliberate bench speed``: how close the engine comes to raw llama.cpp, and how far
it is ahead of a naive loop over the high-level ``Llama`` class.

All three do the same work on the same prompt: a tree that grows ``width`` children per
node for ``levels`` levels, each child ``tokens`` long, always expanding the first child.

- raw: the limit. One prefill, ``llama_memory_seq_cp`` to ``width`` sequences, then
  one ``llama_decode`` per step for all of them. Decode time only.
- engine: ``LlamaBackend.generate`` with one request of ``n = width`` per level, so
  its prefix cache, prefill and sampling are all counted.
- naive: ``Llama.create_completion`` called once per child, one sequence at a time.
  Its own prefix reuse still applies when consecutive prompts match.

Then tool calls: GSM8K-style lines whose ``<<6*7=`` annotations the calculator
completes, generated twice. In the engine's decode loop (``generate_with_tools``) a
call costs the result's tokens of prefill; through continuation requests
(``continue_after_tools``, the path a server backend takes) it costs two new
requests, with whatever the prefix cache does not serve prefilled again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import median
from typing import Any

PROMPT = (
    "The following is a careful, step-by-step explanation written for a curious student.\n\n"
    "Question: Why does a spinning top not fall over while it spins quickly?\n"
    "Explanation:"
)


@dataclass
class Shape:
    width: int = 8  # children per expanded node (K)
    levels: int = 3  # depth of the tree
    tokens: int = 32  # tokens per child
    seed: int = 0


def measure(model_path: str, shape: Shape, *, n_threads: int | None = None, repeat: int = 3) -> dict[str, Any]:
    """Tok/s for raw, engine and naive on ``model_path``, plus the prefill the cache saved.

    The three run in turn, ``repeat`` rounds, and each figure is the median of its
    rounds: on a shared 2-core machine a single run swings by a fifth either way.
    """
    from llama_cpp import Llama

    from deliberate.backends.llama import LlamaBackend

    def load() -> Any:  # a fresh backend per round, so every round starts with a cold cache
        return LlamaBackend(model_path, n_threads=n_threads, n_seq_max=max(16, 2 * shape.width))

    backend = load()
    threads = backend.params["n_threads"]
    from deliberate.backends.llama_model import llama_class_kernels

    with llama_class_kernels(backend.model.extra_bufts):
        llm = Llama(model_path=model_path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
    raws, engines, naives, saved = [], [], [], 0
    try:
        for round_ in range(repeat):
            if round_:
                backend.close()
                backend = load()
            raws.append(_raw(backend, shape))
            rate, saved = _engine(backend, shape)
            engines.append(rate)
            llm.reset()
            naives.append(_naive(llm, shape))
        tools = tool_calls(backend, seed=shape.seed)
    finally:
        llm.close()
        backend.close()
    raw, engine, naive = median(raws), median(engines), median(naives)
    return {
        "width": shape.width,
        "levels": shape.levels,
        "tokens_per_child": shape.tokens,
        "n_threads": threads,
        "repeat": repeat,
        "raw_tok_s": round(raw, 1),
        "engine_tok_s": round(engine, 1),
        "naive_tok_s": round(naive, 1),
        "engine_vs_raw": round(engine / raw, 3),
        "engine_vs_naive": round(engine / naive, 3),
        "prefill_tokens_saved": saved,
        "tool_calls": tools,
    }


TOOL_QUESTION = "A baker makes 6 trays of 7 rolls and sells 30 of them. How many rolls are left?"


def tool_calls(backend: Any, *, seed: int = 0, samples: int = 8, rounds: int = 3) -> dict[str, Any]:
    """Prefill per calculator call, in the decode loop and through continuation requests.

    Each round samples ``samples`` GSM8K-style steps (temperature 0.7) that the prompt
    starts at an annotation; every call the model writes is counted.
    """
    from deliberate.backends.base import GenerateRequest
    from deliberate.backends.tool_calls import continue_after_tools
    from deliberate.clock import Deadline
    from deliberate.tasks.math import MathTask
    from deliberate.tools import CALCULATOR

    task = MathTask()
    prompt = task.step_prompt(TOOL_QUESTION, task.root(TOOL_QUESTION)).render() + "Step: The baker makes 6 * 7 ="
    found: dict[str, list[Any]] = {"inline": [], "continuation": []}
    for round_ in range(rounds):
        request = GenerateRequest(
            prompt=prompt, n=samples, max_tokens=48, stop=("\n",), temperature=0.7, seed=seed + round_, tools=CALCULATOR
        )
        found["inline"] += [c for s in backend.generate_with_tools([request], Deadline.after(600.0))[0] for c in s.calls]
        found["continuation"] += [c for s in continue_after_tools(backend, [request], Deadline.after(600.0))[0] for c in s.calls]
    result: dict[str, Any] = {}
    for path, calls in found.items():
        result[path] = {
            "calls": len(calls),
            "median_prefill_per_call": median(c.prefill for c in calls) if calls else None,
            "median_result_tokens": median(len(backend.model.tokenize(c.output, bos=False)) for c in calls) if calls else None,
        }
    return result


def _raw(backend: Any, shape: Shape) -> float:
    """Batched decode at width K on a fresh context of the same model: the ceiling."""
    import llama_cpp as lc

    params = lc.llama_context_default_params()
    params.n_ctx = 4096
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = max(1, shape.width)
    params.n_threads = params.n_threads_batch = backend.params["n_threads"]
    params.kv_unified = True
    params.no_perf = True
    ctx = lc.llama_init_from_model(backend.model.ptr, params)
    memory = lc.llama_get_memory(ctx)
    batch = lc.llama_batch_init(512, 0, 1)
    samplers = []
    try:
        tokens = backend.model.tokenize(PROMPT)
        _fill_batch(batch, [(t, i, 0, i == len(tokens) - 1) for i, t in enumerate(tokens)])
        _check(lc.llama_decode(ctx, batch))
        for seq in range(1, shape.width):
            lc.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        for seq in range(shape.width):
            chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(40))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(0.8))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(shape.seed + seq))
            samplers.append(chain)
        steps = shape.tokens * shape.levels
        index = [len(tokens) - 1] * shape.width
        pos = len(tokens)
        started = time.perf_counter()
        for _ in range(steps):
            picks = [lc.llama_sampler_sample(samplers[s], ctx, index[s]) for s in range(shape.width)]
            _fill_batch(batch, [(t, pos, s, True) for s, t in enumerate(picks)])
            _check(lc.llama_decode(ctx, batch))
            index = list(range(shape.width))
            pos += 1
        return steps * shape.width / (time.perf_counter() - started)
    finally:
        for chain in samplers:
            lc.llama_sampler_free(chain)
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)


def _fill_batch(batch: Any, rows: list[tuple[int, int, int, bool]]) -> None:
    for i, (token, pos, seq, logits) in enumerate(rows):
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
    batch.n_tokens = len(rows)


def _check(code: int) -> None:
    if code != 0:
        raise RuntimeError(f"llama_decode returned {code}")


def _engine(backend: Any, shape: Shape) -> tuple[float, int]:
    from deliberate.backends.base import GenerateRequest
    from deliberate.clock import Deadline

    deadline = Deadline.after(3600.0)
    before_cached = backend.stats.cached_tokens
    prompt, generated = PROMPT, 0
    started = time.perf_counter()
    for level in range(shape.levels):
        request = GenerateRequest(
            prompt=prompt, n=shape.width, max_tokens=shape.tokens, stop=(), temperature=0.8,
            top_k=40, top_p=1.0, seed=shape.seed + level,
        )
        samples = backend.generate([request], deadline)[0]
        generated += sum(s.completion_tokens for s in samples)
        prompt += samples[0].text  # expand the first child next
    seconds = time.perf_counter() - started
    return generated / seconds, backend.stats.cached_tokens - before_cached


def _naive(llm: Any, shape: Shape) -> float:
    prompt, generated = PROMPT, 0
    started = time.perf_counter()
    for level in range(shape.levels):
        first = None
        for child in range(shape.width):
            out = llm.create_completion(
                prompt, max_tokens=shape.tokens, temperature=0.8, top_k=40, top_p=1.0,
                seed=shape.seed + level * shape.width + child,
            )
            generated += out["usage"]["completion_tokens"]
            first = first if first is not None else out["choices"][0]["text"]
        prompt += first or ""
    return generated / (time.perf_counter() - started)


def report(result: dict[str, Any]) -> str:
    """The human-readable lines ``bench speed`` prints without ``--json``."""
    return "\n".join(
        [
            f"width {result['width']}, {result['levels']} levels, {result['tokens_per_child']} tokens per child, "
            f"{result['n_threads']} threads, median of {result['repeat']} rounds",
            f"raw llama.cpp batched decode  {result['raw_tok_s']:7.1f} tok/s",
            f"engine (LlamaBackend)         {result['engine_tok_s']:7.1f} tok/s   "
            f"{result['engine_vs_raw']:.2f}x raw",
            f"naive Llama.create_completion {result['naive_tok_s']:7.1f} tok/s   "
            f"engine is {result['engine_vs_naive']:.2f}x naive",
            f"prompt tokens the prefix cache saved: {result['prefill_tokens_saved']}",
            *(
                f"tool calls ({path}): {row['calls']}, median prefill per call {row['median_prefill_per_call']} tokens, "
                f"median result {row['median_result_tokens']} tokens"
                for path, row in result["tool_calls"].items()
            ),
        ]
    )
