"""The ``deliberate`` command line.

stdout carries the answer alone (or one JSON object with ``--json``), so it pipes
cleanly; everything else goes to stderr. Exit codes: 0 answer, 3 no answer within the
budget, 2 usage error, 1 any other error, 130 interrupted before thinking began.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from deliberate.benchmarks.cli import bench_app
from deliberate import plugins
from deliberate.cli_options import (
    GpuLayers, Mode, ModelOrServer, StrategyOptions, TaskOptions, Threads, parse_pairs,
)
from deliberate.errors import DeliberateError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Give a local language model time to think: tree-of-thoughts search under a time budget.",
)
trace_app = typer.Typer(no_args_is_help=True, help="Inspect saved search traces.")
app.add_typer(trace_app, name="trace")
app.add_typer(bench_app, name="bench")

NO_ANSWER = 3


def _err(message: str) -> None:
    typer.echo(f"deliberate: {message}", err=True)


@app.command()
def solve(
    question: Optional[str] = typer.Argument(None, help="The question; - reads it from stdin; omit it with --resume."),
    think: str = typer.Option("30s", "--think", "-t", help="Thinking time: 500ms, 8s, 2m, 1h, seconds, or none (needs --max-nodes)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help=plugins.choices(plugins.STRATEGIES), show_default="bfs"),
    task: Optional[str] = typer.Option(None, "--task", help=plugins.choices(plugins.TASKS, first=["auto"]), show_default="auto"),
    model: ModelOrServer = None,
    trace: Optional[Path] = typer.Option(None, "--trace", help="Write the full search trace (JSON) here."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling; the same seed and --max-nodes give the same tree."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the bare answer."),
    opt: StrategyOptions = [],
    max_nodes: Optional[int] = typer.Option(None, "--max-nodes", help="Stop after this many graph nodes (deterministic budget)."),
    verifier: Optional[bool] = typer.Option(None, "--verifier/--no-verifier", help="Check arithmetic and answers with the calculator, or judge states by the model alone.", show_default="--verifier"),
    evaluator: Optional[str] = typer.Option(None, "--evaluator", help="auto (value where the judge profile says it helps), value (label log-probabilities), vote, or none (no model judge).", show_default="auto"),
    task_opt: TaskOptions = [],
    mode: Mode = None,
    chat: Optional[bool] = typer.Option(None, "--chat/--no-chat", help="Render prompts with the model's chat template.", show_default="--no-chat"),
    tools: Optional[bool] = typer.Option(None, "--tools/--no-tools", help="Let the task's tools compute (Game of 24's calculator writes each result); --no-tools for ablations.", show_default="--tools"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a saved trace with more thinking time; its settings are kept unless given again."),
    exact: bool = typer.Option(False, "--exact", help="Reproducible numerics: no weight repacking, fixed prefill chunks (slower)."),
    gpu_layers: GpuLayers = None,
    threads: Threads = None,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="KV cache size in tokens, shared by all branches", show_default="8192"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display and no summary on stderr."),
    view: bool = typer.Option(False, "--view", help="Follow the search live in a browser: prints a 127.0.0.1 URL to stderr."),
) -> None:
    """Think about QUESTION for --think and print the answer."""
    from deliberate.api import think as run_think
    from deliberate.clock import Deadline
    from deliberate.duration import parse_budget
    from deliberate.errors import DurationError, UsageError
    from deliberate.progress import Progress

    if question == "-":
        question = sys.stdin.read().strip()  # a blank one is refused below, as any blank question is
    budget = parse_budget(think)
    if budget is None and max_nodes is None:
        raise DurationError("--think none needs a node budget: add --max-nodes N")
    if question is None and resume is None:
        raise UsageError("give a QUESTION (or --resume TRACE)")
    backend_options: dict[str, Any] = {
        key: value
        for key, value in (("n_gpu_layers", gpu_layers), ("n_threads", threads), ("n_ctx", ctx))
        if value is not None
    }
    if exact:
        backend_options["exact_batching"] = True
    target = trace if trace is not None else resume
    deadline = Deadline.after(None)
    progress = None if quiet or not sys.stderr.isatty() else Progress.for_search(budget)
    live = None
    if view:
        from deliberate.viewer.live import LiveView

        live = LiveView(question=question)
        _err(f"live view: {live.start()}")
    listeners = [f for f in (progress.update_search if progress else None, live.on_event if live else None) if f]
    try:
        with _interrupts(deadline):
            result = run_think(
                question,
                task=task,
                strategy=strategy,
                model=model,
                think=budget,
                seed=seed,
                on_event=(lambda event: [listen(event) for listen in listeners]) if listeners else None,
                options=opt,
                max_nodes=max_nodes,
                verifier=verifier,
                evaluator=evaluator,
                mode=mode,
                chat=chat,
                tools=tools,
                task_options=parse_pairs(task_opt, "--task-opt") or None,
                backend_options=backend_options,
                trace=target,
                resume=resume,
                deadline=deadline,
            )
        if live:
            live.finish(result.trace)  # the page becomes the static view
            live.wait_delivered(timeout=5)
    finally:
        if live:
            live.close()
    if progress:
        progress.close()
    stats = result.stats
    if json_out:
        payload = {
            "answer": result.answer,
            "solved": result.solved,
            "question": result.trace["meta"]["question"],
            "task": result.trace["meta"]["task"],
            "strategy": result.trace["meta"]["strategy"],
            "stop_reason": stats.stop_reason,
            "answers": result.graph.answers(),  # every answer reached, with its chains
            "trace": str(target) if target else None,
            "stats": result.trace["meta"]["stats"],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False))
    elif result.answer is not None:
        typer.echo(result.answer)
    if not quiet:
        outcome = "answer" if result.answer is not None else "no answer"
        _err(
            f"{outcome} · thought {stats.thinking_seconds:.1f}s (model load {stats.load_seconds:.1f}s) · "
            f"{stats.nodes} nodes · {stats.tokens} tokens · {stats.tokens_per_second:.0f} tok/s · "
            f"stop: {stats.stop_reason}"
        )
    if result.answer is None:
        raise typer.Exit(NO_ANSWER)


@trace_app.command("show")
def trace_show(
    file: Path = typer.Argument(..., help="A trace written by solve --trace."),
    format: str = typer.Option("tree", "--format", "-f", help="tree, graphml or json."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write graphml/json here instead of stdout."),
    max_depth: Optional[int] = typer.Option(None, "--max-depth", help="Show the tree only this deep."),
) -> None:
    """Render a trace as a tree (answer path highlighted), or export it."""
    from deliberate import render

    render.show(file, format=format, out=out, max_depth=max_depth)


@trace_app.command("view")
def trace_view(
    file: Path = typer.Argument(..., help="A trace written by solve --trace."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the page here.", show_default="TRACE with .html"),
    open_: bool = typer.Option(False, "--open", help="Open the page in the default web browser."),
) -> None:
    """Write the trace as one self-contained HTML page: the tree, its values and a replay timeline."""
    from deliberate.viewer import view

    written = view(file, out, open_browser=open_)
    _err(f"wrote {written} ({written.stat().st_size / 1024:.0f} KB; works offline)")


@app.command()
def serve(
    model: ModelOrServer = None,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs --api-key."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    strategy: str = typer.Option("bfs", "--strategy", "-s", help="The strategy of model 'deliberate'; 'deliberate/NAME' picks another."),
    think: str = typer.Option("30s", "--think", "-t", help="Thinking time when a request names none."),
    max_think: str = typer.Option("5m", "--max-think", help="The most a request may ask for (think or reasoning_effort)."),
    effort: list[str] = typer.Option([], "--effort", help="reasoning_effort times, LEVEL=DURATION (repeatable)", show_default="low=5s medium=15s high=30s"),
    max_concurrent: int = typer.Option(4, "--max-concurrent", min=1, help="Searches at once; more get 503 with Retry-After."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="DELIBERATE_API_KEY", help="Require 'Authorization: Bearer KEY' on every route."),
    keep_traces: int = typer.Option(100, "--keep-traces", min=1, help="Finished traces kept for /v1/traces and the pages."),
    max_body: int = typer.Option(1_000_000, "--max-body", min=1024, help="Largest request body in bytes (413 past it)."),
    max_question: int = typer.Option(16_000, "--max-question", min=1, help="Longest question with its context, in characters (413 past it)."),
    threads: Threads = None,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="KV cache size in tokens, shared by every search", show_default="8192"),
    seqs: Optional[int] = typer.Option(None, "--seqs", min=1, max=256, help="llama.cpp sequence ids: the most branches in one decode step", show_default="64"),
    gpu_layers: GpuLayers = None,
) -> None:
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/completions) that thinks before it answers."""
    import ipaddress
    import socket

    from deliberate import api, strategies
    from deliberate.backends import open_backend
    from deliberate.duration import parse_duration
    from deliberate.errors import DurationError, UsageError

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name: it may resolve to anything
    if not loopback and not api_key:
        raise UsageError(f"--host {host} is reachable from other machines: give --api-key KEY (or $DELIBERATE_API_KEY)")
    strategies.load(strategy)  # an unknown name fails before the model loads
    efforts = {"low": 5.0, "medium": 15.0, "high": 30.0}
    for level, duration in parse_pairs(effort, "--effort").items():
        if level not in efforts:
            raise UsageError(f"--effort takes low, medium or high, got {level!r}")
        efforts[level] = parse_duration(str(duration))
    default_think, longest = parse_duration(think), parse_duration(max_think)
    if default_think > longest:
        raise DurationError(f"--think {think} is longer than --max-think {max_think}")
    try:
        from deliberate.serve import Limits, ServeConfig, create_app
        import uvicorn
    except ImportError:
        raise UsageError("deliberate serve needs the server extra: pip install 'deliberate[server]'") from None
    config = ServeConfig(
        limits=Limits(strategy=strategy, think=default_think, max_think=longest, effort=efforts, max_question=max_question),
        max_concurrent=max_concurrent, api_key=api_key, keep_traces=keep_traces, max_body=max_body,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))  # before the model loads: a taken port fails fast
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    backend_options = {k: v for k, v in (("n_threads", threads), ("n_ctx", ctx), ("n_seq_max", seqs), ("n_gpu_layers", gpu_layers)) if v is not None}
    backend = open_backend(model, **backend_options)
    app_ = create_app(backend, config, model_meta=api._model_meta(backend, model), close_backend=True)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    _err(f"serving on http://{shown}:{bound}/v1 (strategy {strategy}, think {think}, at most {max_concurrent} at once); pages at http://{shown}:{bound}/")
    server = uvicorn.Server(uvicorn.Config(app_, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2))
    server.run(sockets=[sock])


@app.command("plugins")
def plugins_list() -> None:
    """List the strategies, tasks, backends and datasets, built-in and from plugins, and where each comes from.

    A plugin that cannot be used (an import error, the wrong kind of object, a name
    another plugin or a built-in already has) is marked with "!" and the reason.
    """
    from deliberate import plugins

    for line in plugins.report_lines():
        typer.echo(line)


class _interrupts:
    """SIGINT and SIGTERM end the search through its deadline; a second SIGINT quits hard."""

    def __init__(self, deadline: Any) -> None:
        self.deadline = deadline
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _interrupts:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.deadline.cancelled and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.deadline.cancel()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def main() -> None:
    """Console entry point: one-line errors, exit codes from the error hierarchy."""
    try:
        code = app(standalone_mode=False)  # returns the exit code of typer.Exit
    except DeliberateError as error:
        _err(f"error: {error}")
        sys.exit(error.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except typer.Abort:
        _err("interrupted")
        sys.exit(130)
    except Exception as error:  # typer's (vendored click) usage errors, then anything unexpected
        from typer._click import exceptions as click_errors

        if isinstance(error, click_errors.NoArgsIsHelpError):
            error.show()  # the help text
            sys.exit(0)
        if isinstance(error, click_errors.ClickException):
            _err(f"error: {' '.join(error.format_message().split())}")
            sys.exit(error.exit_code)
        if os.environ.get("DELIBERATE_DEBUG"):
            raise
        _err(f"internal error: {type(error).__name__}: {error} (set DELIBERATE_DEBUG=1 for a traceback)")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
