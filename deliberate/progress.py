"""The one live progress display on stderr, for ``solve`` and for ``bench``.

It is a ``rich.progress.Progress`` with one task, fed in one of two ways:

- ``Progress.for_search(budget)``, fed search events (``update_search``): time spent,
  time left (or "no time limit"), nodes, the best value so far;
- ``Progress.for_bench()``, fed bench records (``start_bench``, ``update_bench``): a bar
  with the count, the ETA and this run's accuracy;
- ``Progress.for_stages()``, fed (stage, done, total) counts (``update_stage``): one
  bar per stage of a measurement, as ``bench judge`` collects and then judges states.

It draws nothing that stdout carries, so ``solve``'s answer and ``--json`` stay clean.
"""

from __future__ import annotations

from typing import Any


class Progress:
    def __init__(self, console: Any = None, *, bar: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Rich

        columns: list[Any] = [TextColumn("{task.description}")]
        if bar:
            columns += [BarColumn(), MofNCompleteColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[accuracy]}")]  # fmt: skip
        self.rich = Rich(*columns, console=console or Console(stderr=True), transient=not bar)
        self.task: Any = None
        self.budget: float | None = None
        self.nodes = 1
        self.best: float | None = None
        self.done = self.correct = 0
        self.stages: dict[str, Any] = {}

    # -- a search ----------------------------------------------------------------------
    @classmethod
    def for_search(cls, budget: float | None, console: Any = None) -> Progress:
        progress = cls(console, bar=False)
        progress.budget = budget
        return progress

    def update_search(self, event: dict[str, Any]) -> None:
        if self.task is None:  # the first event: the model is loaded and thinking has begun
            self.task = self.rich.add_task("", total=None)
            self.rich.start()
        if event["type"] == "expand":
            self.nodes += sum(len(group) for group in event["children"])
        if event["type"] == "evaluate" and event["values"]:
            top = max(event["values"])
            self.best = top if self.best is None else max(self.best, top)
        if event["type"] == "verify" and event["ok"]:
            self.best = 1.0
        self.rich.update(self.task, description=self._status(event["t"]))

    def _status(self, elapsed: float) -> str:
        best = "-" if self.best is None else f"{self.best:.2f}"
        left = "no time limit" if self.budget is None else f"{max(0.0, self.budget - elapsed):5.1f}s left"
        return f"thinking {elapsed:5.1f}s · {left} · {self.nodes} nodes · best value {best}"

    # -- a bench run -------------------------------------------------------------------
    @classmethod
    def for_bench(cls, console: Any = None) -> Progress:
        return cls(console, bar=True)

    def start_bench(self, todo: int, skipped: int) -> None:
        label = f"bench ({skipped} done before)" if skipped else "bench"
        self.task = self.rich.add_task(label, total=todo, accuracy="")
        self.rich.start()

    def update_bench(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.correct += bool(record.get("correct"))
        accuracy = f"accuracy {self.correct}/{self.done} ({self.correct / self.done:.0%})"
        self.rich.update(self.task, advance=1, accuracy=accuracy)

    # -- a measurement in stages -------------------------------------------------------
    STAGES = {"collect": "collecting states", "label": "labelling by rollouts", "value": "judging: value",
              "vote": "judging: vote"}  # fmt: skip

    @classmethod
    def for_stages(cls, console: Any = None) -> Progress:
        return cls(console, bar=True)

    def update_stage(self, stage: str, done: int, total: int) -> None:
        if not self.stages:
            self.rich.start()
        if stage not in self.stages:
            self.stages[stage] = self.rich.add_task(self.STAGES.get(stage, stage), total=total, accuracy="")
        self.rich.update(self.stages[stage], completed=done, total=total)

    def close(self) -> None:
        self.rich.stop()
