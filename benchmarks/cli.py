"""``deliberate bench``: run a benchmark grid, or report on its results.

    deliberate bench game24 --data ../shared/datasets/game24 --think 5s --think 60s
    deliberate bench report results.jsonl --plot accuracy.png --markdown

The dataset kind is the first argument of the default command, so the group falls back
to ``run`` whenever its first argument is not a subcommand's name. Only typer is
imported here; the runner, and through it the model, load when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from deliberate import plugins
from deliberate.cli_options import (
    ModelFile, ModelOrServer, Mode, StrategyOptions, TaskOptions, Threads, parse_pairs,
)


class DefaultCommandGroup(TyperGroup):
    """A group whose ``default`` command runs when the first argument names no command."""

    default = "run"

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=DefaultCommandGroup,
    no_args_is_help=True,
    help=f"Benchmarks: 'bench TASK --data PATH' runs a grid (TASK: {plugins.choices(plugins.DATASETS)}); "
    "'bench report FILE' summarizes results.",
)


@bench_app.command("run")
def bench_run(
    task: str = typer.Argument(..., help=f"Dataset kind: {plugins.choices(plugins.DATASETS)}."),
    data: Path = typer.Option(..., "--data", help="The dataset's folder or file (e.g. ../shared/datasets/game24)."),
    strategy: list[str] = typer.Option(["bfs"], "--strategy", "-s", help=f"Strategy to run (repeatable): {plugins.choices(plugins.STRATEGIES)}."),
    think: list[str] = typer.Option(["15s"], "--think", "-t", help="Thinking time per question (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Run this many items", show_default="all"),
    start: int = typer.Option(0, "--start", help="Skip this many items first."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling."),
    model: ModelOrServer = None,
    out: Path = typer.Option(Path("results.jsonl"), "--out", help="Append records here; finished ones are skipped on a rerun."),
    no_verifier: bool = typer.Option(False, "--no-verifier", help="Judge states by the model alone; no calculator checks."),
    concurrency: int = typer.Option(1, "--concurrency", help="Items at once (needs a model server)."),
    trace_dir: Optional[Path] = typer.Option(None, "--trace-dir", help="Write each search's trace into this folder."),
    opt: StrategyOptions = [],
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary table."),
    evaluator: Optional[str] = typer.Option(None, "--evaluator", help="auto, value, vote, or none (no model judge: every state 0.5).", show_default="auto"),
    mode: Mode = None,
    task_opt: TaskOptions = [],
    no_tools: bool = typer.Option(False, "--no-tools", help="Turn the task's tools off (the model computes; for ablations)."),
    solve_as: Optional[str] = typer.Option(
        None, "--task", show_default="the dataset's",
        help="Solve every item as this task (auto: as 'solve --task auto' reads each question), e.g. generic on gsm8k.",
    ),
    seqs: Optional[int] = typer.Option(
        None, "--seqs", min=1, max=256, show_default="64",
        help="llama.cpp sequence ids: the most branches decoded in one batch (1 = one at a time).",
    ),
) -> None:
    """Solve every item of TASK's dataset under every --strategy and --think; append records to --out."""
    from rich.console import Console

    from deliberate.benchmarks import report, runner
    from deliberate.progress import Progress

    console = Console(stderr=True)
    progress = None if quiet else Progress.for_bench(console)
    try:
        records = runner.run(
            task, data, strategies=strategy, thinks=think, limit=limit, start=start, seed=seed,
            model=model, out=out, verifier=not no_verifier, concurrency=concurrency, trace_dir=trace_dir,
            options=opt, on_start=progress.start_bench if progress else None,
            backend_options={"n_seq_max": seqs} if seqs else None,
            settings={
                "evaluator": evaluator, "mode": mode, "task_options": parse_pairs(task_opt, "--task-opt"),
                "tools": False if no_tools else None, "task": solve_as,
            },
            on_record=progress.update_bench if progress else None,
        )
    except KeyboardInterrupt:
        if progress:
            progress.close()
        console.print(f"[yellow]interrupted[/]; finished records are in {out}: run the same command to resume")
        raise
    if progress:
        progress.close()
    if not quiet:
        console.print(report.render_table(report.table(records)))


@bench_app.command("report")
def bench_report(
    files: list[Path] = typer.Argument(..., help="Results files written by 'deliberate bench'."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also plot accuracy against thinking time into this PNG."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (for a README) instead."),
    grid: bool = typer.Option(False, "--grid", help="Print Markdown with strategies as rows and thinking times as columns."),
    items: Optional[str] = typer.Option(
        None, "--items", help="Only the items numbered in this range, e.g. 1-30 (ids test:1 to test:30, or ranks 1101-1150)."
    ),
    stated: bool = typer.Option(
        False, "--stated", help="Split right answers by whether the gold answer is a number the question states, "
        "and count the answers that are one (numeric tasks such as gsm8k).",
    ),
    reached: bool = typer.Option(
        False, "--reached", help="Count the items where some answer the search reached was right, "
        "and how often the one it gave was then the right one.",
    ),
) -> None:
    """Accuracy with 95% Wilson intervals, per task, strategy and thinking time."""
    from rich.console import Console

    from deliberate.benchmarks import report
    from deliberate.errors import DatasetError, UsageError

    own = [flag for flag, on in (("--stated", stated), ("--reached", reached)) if on]
    if len(own) > 1:
        raise UsageError("--stated and --reached print tables of their own: give one at a time")
    if own and (grid or plot is not None):
        raise UsageError(f"{own[0]} prints its own table: it cannot be combined with --grid or --plot")
    span = report.item_range(items) if items is not None else None
    records = report.read_records(files)
    if span is not None:
        records = report.in_range(records, *span)
    if not records:
        where = f" for items {items}" if items is not None else ""
        raise DatasetError(f"no results in {', '.join(map(str, files))}{where}")
    if own:  # a table of its own: (rows, Markdown, rich table)
        from deliberate.benchmarks import reached as generated
        from deliberate.benchmarks import stated as copied

        make, as_markdown, as_rich = {
            "--stated": (copied.stated_table, copied.stated_markdown, copied.render_stated),
            "--reached": (generated.reached_table, generated.reached_markdown, generated.render_reached),
        }[own[0]]
        found = make(records)
        if markdown:
            typer.echo(as_markdown(found), nl=False)
        else:
            Console().print(as_rich(found))
        return
    rows = report.table(records)
    if grid:
        typer.echo(report.to_grid(rows), nl=False)
    elif markdown:
        typer.echo(report.to_markdown(rows), nl=False)
    else:
        Console().print(report.render_table(rows))
    if plot is not None:
        report.plot(rows, plot)
        typer.echo(f"wrote {plot}", err=True)


# -- deliberate bench speed ----------------------------------------------------------------
@bench_app.command("speed")
def bench_speed(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    width: int = typer.Option(8, "--width", "-k", min=1, max=128, help="Children per node (K)."),
    levels: int = typer.Option(3, "--levels", min=1, max=8, help="Levels of the tree."),
    tokens: int = typer.Option(32, "--tokens", min=1, max=256, help="Tokens per child."),
    model: ModelFile = None,
    threads: Threads = None,
    repeat: int = typer.Option(3, "--repeat", min=1, max=20, help="Rounds; each figure is the median."),
) -> None:
    """Tok/s of raw llama.cpp batched decode, the engine, and a naive Llama loop, on one tree shape."""
    import json

    from deliberate.benchmarks import speed
    from deliberate.models import is_server_url, resolve_model
    from deliberate.errors import UsageError

    if is_server_url(model):
        raise UsageError("bench speed measures llama.cpp in this process; give a GGUF path, not a URL")
    result = speed.measure(str(resolve_model(model)), speed.Shape(width, levels, tokens), n_threads=threads, repeat=repeat)
    typer.echo(json.dumps(result) if json_out else speed.report(result))


# -- deliberate bench injection ------------------------------------------------------------
@bench_app.command("injection")
def bench_injection(
    task: list[str] = typer.Option(["generic", "math"], "--task", help="generic or math (repeatable)."),
    pairs: Optional[int] = typer.Option(None, "--pairs", min=1, max=5, help="(question, thought) pairs per task", show_default="all 5"),
    injections: Optional[int] = typer.Option(None, "--injections", min=1, help="Use the first N injections", show_default="all"),
    seed: int = typer.Option(0, "--seed", help="Seed for the benign texts and the bootstrap."),
    resamples: int = typer.Option(2000, "--resamples", min=100, help="Bootstrap resamples."),
    model: ModelOrServer = None,
    threads: Threads = None,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the full results, every case included, as JSON here."),
) -> None:
    """How much an injected instruction raises the judge's value over benign text of the same length."""
    import json

    from rich.console import Console

    from deliberate.backends import open_backend
    from deliberate.benchmarks import injection
    from deliberate.errors import DeliberateError, UnknownNameError

    unknown = sorted(set(task) - set(injection.CASES))
    if unknown:
        raise UnknownNameError(f"bench injection has no cases for {', '.join(unknown)} (tasks: {', '.join(injection.CASES)})")
    backend = open_backend(model, **({"n_threads": threads} if threads else {}))
    try:
        result = injection.measure(backend, tasks=task, pairs=pairs, injections=injections, seed=seed, resamples=resamples)
    finally:
        backend.close()
    if out is not None:
        try:
            out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise DeliberateError(f"cannot write {out}: {exc.strerror or exc}") from exc
    if json_out:
        typer.echo(json.dumps(result))
    else:
        Console().print(injection.render(result))


# -- deliberate bench view -----------------------------------------------------------------
@bench_app.command("view")
def bench_view(
    nodes: int = typer.Option(5000, "--nodes", min=1, max=200_000, help="Size of the synthetic tree."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="Measure this trace instead of a synthetic one."),
    repeat: int = typer.Option(3, "--repeat", min=1, max=20, help="Page loads; each figure is the median."),
    screenshot: Optional[Path] = typer.Option(None, "--screenshot", help="Save a PNG of the page after the last load."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Render time of the static viewer page in headless Chromium (waits for data-ready)."""
    import json

    from deliberate.benchmarks import viewer_speed
    from deliberate.trace import read_trace

    data = read_trace(trace) if trace is not None else viewer_speed.synthetic_trace(nodes)
    result = viewer_speed.measure(data, repeat=repeat, screenshot=screenshot)
    typer.echo(json.dumps(result) if json_out else viewer_speed.report(result))
    if screenshot is not None:
        typer.echo(f"wrote {screenshot}", err=True)


# -- deliberate bench serve ----------------------------------------------------------------
@bench_app.command("serve")
def bench_serve(
    think: str = typer.Option("30s", "--think", "-t", help="Thinking time of each search."),
    model: ModelFile = None,
    threads: Threads = None,
    repeat: int = typer.Option(1, "--repeat", min=1, max=20, help="Rounds of both modes; the targets are judged on the median round."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the result as JSON here."),
) -> None:
    """Four concurrent bfs searches on one model: shared decode steps (as 'deliberate serve') against one lock."""
    import json

    from deliberate.benchmarks import serve_bench
    from deliberate.duration import parse_duration
    from deliberate.errors import DeliberateError, UsageError
    from deliberate.models import is_server_url, resolve_model

    if is_server_url(model):
        raise UsageError("bench serve measures llama.cpp in this process; give a GGUF path, not a URL")
    result = serve_bench.measure(str(resolve_model(model)), think=parse_duration(think), n_threads=threads, repeat=repeat)
    if out is not None:
        try:
            out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise DeliberateError(f"cannot write {out}: {exc.strerror or exc}") from exc
    typer.echo(json.dumps(result) if json_out else serve_bench.report(result))


# -- deliberate bench judge ----------------------------------------------------------------
@bench_app.command("judge")
def bench_judge(
    task: str = typer.Argument(..., help="Dataset kind: game24 (exact ground truth) or gsm8k (rollouts to the gold answer)."),
    data: Path = typer.Option(..., "--data", help="The dataset's folder or file (e.g. ../shared/datasets/game24)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Run at most this many items", show_default="all"),
    start: int = typer.Option(0, "--start", help="Skip this many items first."),
    think: str = typer.Option("5s", "--think", "-t", help="Thinking time of each collecting search."),
    strategy: str = typer.Option("bfs", "--strategy", "-s", help="Strategy of the collecting searches."),
    evaluator: str = typer.Option("both", "--evaluator", help="value, vote or both."),
    states: int = typer.Option(200, "--states", min=1, help="Collect this many distinct states, then stop."),
    seed: int = typer.Option(0, "--seed", help="Seed for the searches and the bootstrap."),
    resamples: int = typer.Option(1000, "--resamples", min=100, help="Bootstrap resamples per interval."),
    rollouts: int = typer.Option(4, "--rollouts", min=1, help="gsm8k: sampled continuations per state; good if one reaches the gold answer."),
    model: ModelOrServer = None,
    out: Path = typer.Option(Path("results/judge.json"), "--out", help="Write the summary, every state included, as JSON here."),
    save: bool = typer.Option(False, "--save", help="Also save the AUCs as this model's judge profile for the task."),
) -> None:
    """How well the model's judge separates states that can still succeed from states that cannot (ROC AUC)."""
    from rich.console import Console

    from deliberate import profiles
    from deliberate.benchmarks import judge, judge_report
    from deliberate.progress import Progress

    console = Console(stderr=True)
    evaluators = judge.parse_evaluators(evaluator)
    judge.check_supported(task)
    out = judge_report.prepare_out(out)
    if save:
        profiles.read_profiles()  # a broken profile file fails now, not after the measurement
    progress = Progress.for_stages(console)
    try:
        result = judge.measure(
            task, data, model=model, limit=limit, start=start, think=think, strategy=strategy,
            evaluators=evaluators, states=states, seed=seed, resamples=resamples, rollouts=rollouts, need_sha256=save,
            on_progress=progress.update_stage,
        )
    finally:
        progress.close()
    judge_report.write_result(out, result)
    console.print(judge_report.render(result))
    typer.echo(f"wrote {out}", err=True)
    if save:
        where = profiles.save_profile(result["model_sha256"], result["task"], judge_report.profile_entries(result))
        typer.echo(f"saved the judge profile of {result['model']} on {result['task']} to {where}", err=True)
