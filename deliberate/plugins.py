"""Plugins: strategies, tasks, backends and datasets, found by name through entry points.

Four entry-point groups, one registry each:

    group                    what a name loads                          used by
    deliberate.strategies    a strategy class (Options, configure, run)  --strategy
    deliberate.tasks         a task class (the protocol in tasks/base)   --task
    deliberate.backends      a callable (model, **params) -> Backend     --model NAME:MODEL
    deliberate.datasets      a benchmarks.datasets.Dataset               deliberate bench KIND

A plugin is any installed distribution that declares entry points in these groups,
for example in its pyproject.toml::

    [project.entry-points."deliberate.strategies"]
    greedy-first = "deliberate_example:GreedyFirst"

How a name is decided:

- **Built-ins go the same way.** deliberate declares its own strategies, tasks,
  backends and datasets as entry points in its pyproject.toml, and loads them through
  the same code as any plugin. ``BUILTINS`` below says the same again, because the
  installed metadata is written only when the package is installed: a source checkout
  on ``PYTHONPATH``, or an editable install made before a built-in was added, has none
  of these entry points (or an old list), and must still find every built-in. For each
  name, deliberate's own entry point is used when the metadata has it, else the
  table's; ``tests/test_plugins.py`` checks that the table and pyproject.toml agree.
- **A built-in wins.** A plugin entry point with a built-in's name is never loaded;
  ``deliberate plugins`` lists it as shadowed, so it is not silently ignored either.
- **Two plugins with one name: neither wins.** Using that name is a ``PluginError``
  naming both distributions, until one is uninstalled.
- **Lazy.** Nothing is imported until a name is used. Listing a group's names reads
  installed metadata once per process (a few milliseconds) and runs no plugin code;
  ``load`` imports that one entry point's module.
- **Broken plugins are named.** An entry point whose import fails, or whose object is
  of the wrong kind, raises a one-line ``PluginError`` saying which name, which
  distribution and what went wrong, only when that name is used. ``report`` (the
  ``deliberate plugins`` command) loads every entry and marks the broken ones, and
  never raises.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deliberate.errors import DatasetError, DeliberateError, PluginError, UnknownNameError

# The built-ins, name -> "module:attribute", in the order names() lists them. Keep in
# step with [project.entry-points] in pyproject.toml (a test compares the two).
BUILTINS: dict[str, dict[str, str]] = {
    "deliberate.strategies": {
        "cot": "deliberate.strategies.cot:ChainOfThought",
        "best-of-n": "deliberate.strategies.best_of_n:BestOfN",
        "self-consistency": "deliberate.strategies.self_consistency:SelfConsistency",
        "bfs": "deliberate.strategies.bfs:BreadthFirst",
        "dfs": "deliberate.strategies.dfs:DepthFirst",
        "beam": "deliberate.strategies.beam:Beam",
        "mcts": "deliberate.strategies.mcts:MonteCarlo",
    },
    "deliberate.tasks": {
        "generic": "deliberate.tasks.generic:GenericTask",
        "game24": "deliberate.tasks.game24:Game24Task",
        "math": "deliberate.tasks.math:MathTask",
    },
    "deliberate.backends": {
        "llama": "deliberate.backends:open_llama",
        "server": "deliberate.backends:open_server",
    },
    "deliberate.datasets": {
        "game24": "deliberate.benchmarks.datasets:GAME24",
        "gsm8k": "deliberate.benchmarks.datasets:GSM8K",
        "math500": "deliberate.benchmarks.datasets:MATH500",
        "prontoqa": "deliberate.benchmarks.datasets:PRONTOQA",
        "bbh": "deliberate.benchmarks.datasets:BBH",
        "generic": "deliberate.benchmarks.datasets:GENERIC",
    },
}

OWN_DISTRIBUTION = "deliberate"


def _entry_points(group: str) -> Iterable[Any]:
    """Every installed entry point in ``group`` (tests replace this to fake plugins)."""
    from importlib.metadata import entry_points

    return entry_points(group=group)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Entry:
    """One name in one group, and where it comes from."""

    group: str
    name: str
    value: str  # "module:attribute"
    builtin: bool
    distribution: str | None  # "deliberate-example 0.1.0"; None for the in-code table
    entry_point: Any = field(repr=False, compare=False)  # what ``load`` calls

    @property
    def origin(self) -> str:
        if self.builtin:
            return "built-in" if self.distribution else "built-in (in-code table)"
        return f"plugin {self.distribution or '(unknown distribution)'}"


@dataclass(frozen=True)
class Row:
    """A line of ``report``: an entry, and what is wrong with it, if anything."""

    entry: Entry
    problem: str | None = None  # "broken: ...", "conflict: ..." or "shadowed: ..."


@dataclass
class _Found:
    chosen: dict[str, Entry]  # the name's winner
    shadowed: list[Entry]  # plugins that named a built-in
    conflicts: dict[str, list[Entry]]  # plugin names claimed by more than one distribution
    error: str | None = None  # why the metadata could not be read, if it could not


def _entry(group: str, entry_point: Any) -> Entry:
    dist = getattr(entry_point, "dist", None)
    name = version = None
    if dist is not None:
        try:
            name, version = dist.metadata["Name"], dist.version
        except Exception:  # noqa: BLE001 - broken metadata must not hide the entry point
            name = getattr(dist, "name", None)
    builtin = name is not None and _normalize(name) == OWN_DISTRIBUTION
    label = None if name is None else f"{name} {version}" if version else name
    return Entry(group, entry_point.name, entry_point.value, builtin, label, entry_point)


class Registry:
    """The names of one entry-point group: built-ins first, then plugins.

    ``kind`` and ``plural`` write the unknown-name message ("unknown strategy 'x'
    (strategies: cot, ...)"); ``unknown`` is its error class; ``check`` says what is
    wrong with a loaded object (a short phrase), or None when it will do.
    """

    def __init__(
        self,
        group: str,
        *,
        kind: str,
        plural: str,
        check: Callable[[Any], str | None],
        unknown: type[DeliberateError] = UnknownNameError,
    ) -> None:
        self.group, self.kind, self.plural = group, kind, plural
        self.check, self.unknown = check, unknown
        self._found: _Found | None = None

    def refresh(self) -> None:
        """Forget what was found, so the next use reads the installed metadata again."""
        self._found = None

    def names(self) -> list[str]:
        """Every usable name: built-ins in their own order, then plugins alphabetically."""
        chosen = self._discover().chosen
        builtins = [n for n, e in chosen.items() if e.builtin]
        return builtins + sorted(n for n, e in chosen.items() if not e.builtin)

    def __contains__(self, name: object) -> bool:
        return name in self._discover().chosen

    def entry(self, name: str) -> Entry:
        """Where ``name`` comes from, without importing it."""
        found = self._discover()
        if name in found.conflicts:
            where = " and ".join(e.origin for e in found.conflicts[name])
            raise PluginError(f"{self.kind} {name!r} is provided by more than one plugin ({where}): uninstall all but one")
        if name not in found.chosen:
            raise self.unknown(f"unknown {self.kind} {name!r} ({self.plural}: {', '.join(self.names())})")
        return found.chosen[name]

    def load(self, name: str) -> Any:
        """The object ``name`` stands for, imported now; a ``PluginError`` if it is broken."""
        return self._load(self.entry(name))

    @property
    def discovery_error(self) -> str | None:
        """Why the installed entry points could not be read (only the built-ins are used then)."""
        return self._discover().error

    def report(self) -> list[Row]:
        """Every entry found, each loaded and checked; never raises."""
        found = self._discover()
        rows = []
        for name in self.names():
            _, reason, _ = self._try(found.chosen[name])
            rows.append(Row(found.chosen[name], reason and f"broken: {reason}"))
        for name, entries in sorted(found.conflicts.items()):
            others = " and ".join(e.origin for e in entries)
            rows.extend(Row(e, f"conflict: {name!r} is claimed by {others}; none is used") for e in entries)
        for entry in found.shadowed:
            rows.append(Row(entry, f"shadowed: the built-in {self.kind} {entry.name!r} wins; this one is ignored"))
        return rows

    def _load(self, entry: Entry) -> Any:
        obj, reason, cause = self._try(entry)
        if reason:
            raise PluginError(f"{self.kind} {entry.name!r} ({entry.origin}, {entry.value}) is broken: {reason}") from cause
        return obj

    def _try(self, entry: Entry) -> tuple[Any, str | None, BaseException | None]:
        """The loaded object, or why it cannot be used (and the exception behind that)."""
        try:
            obj = entry.entry_point.load()
        except (Exception, SystemExit) as exc:  # a plugin's import may raise anything
            return None, f"import failed: {type(exc).__name__}: {_one_line(exc)}", exc
        try:
            problem = self.check(obj)
        except Exception as exc:  # noqa: BLE001 - an object so odd that checking it fails
            return None, f"wrong kind: {type(exc).__name__}: {_one_line(exc)}", exc
        return obj, (f"wrong kind: {problem}" if problem else None), None

    def _discover(self) -> _Found:
        if self._found is not None:
            return self._found
        from importlib.metadata import EntryPoint

        table = {
            name: Entry(self.group, name, value, True, None, EntryPoint(name, value, self.group))
            for name, value in BUILTINS.get(self.group, {}).items()
        }
        error = None
        try:
            entries = [_entry(self.group, ep) for ep in _entry_points(self.group)]
        except Exception as exc:  # noqa: BLE001 - unreadable metadata: the built-ins still work
            entries, error = [], f"{type(exc).__name__}: {_one_line(exc)}"
        own = {e.name: e for e in entries if e.builtin}
        # The table's order, with deliberate's own entry point where the metadata has one.
        builtins = {name: own.get(name, entry) for name, entry in table.items()}
        builtins.update((name, entry) for name, entry in own.items() if name not in builtins)
        claims: dict[str, list[Entry]] = {}
        for entry in entries:
            if not entry.builtin:
                claims.setdefault(entry.name, []).append(entry)
        chosen, shadowed, conflicts = dict(builtins), [], {}
        for name, claimants in claims.items():
            if name in builtins:
                shadowed.extend(claimants)
            elif len(claimants) > 1:
                conflicts[name] = claimants
            else:
                chosen[name] = claimants[0]
        self._found = _Found(chosen, shadowed, conflicts, error)
        return self._found


# -- what each group accepts -------------------------------------------------------------


def _check_strategy(obj: Any) -> str | None:
    options = getattr(obj, "Options", None)
    if not isinstance(obj, type) or not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        return f"expected a strategy class with an Options dataclass, got {_describe(obj)}"
    missing = [m for m in ("configure", "run") if not callable(getattr(obj, m, None))]
    return f"strategy class {obj.__name__} has no {', '.join(missing)}" if missing else None


def _check_task(obj: Any) -> str | None:
    from deliberate.tasks.base import Task

    if not isinstance(obj, type):
        return f"expected a task class, got {_describe(obj)}"
    needed = [m for m in dir(Task) if not m.startswith("_") and callable(getattr(Task, m))]
    missing = [m for m in needed if not callable(getattr(obj, m, None))]
    return f"task class {obj.__name__} has no {', '.join(missing)}" if missing else None


def _check_backend(obj: Any) -> str | None:
    return None if callable(obj) else f"expected a callable (model, **params) -> Backend, got {_describe(obj)}"


def _check_dataset(obj: Any) -> str | None:
    from deliberate.benchmarks.datasets import Dataset

    return None if isinstance(obj, Dataset) else f"expected a deliberate.benchmarks.datasets.Dataset, got {_describe(obj)}"


def _describe(obj: Any) -> str:
    return f"{type(obj).__name__} {_one_line(repr(obj))[:60]}"


STRATEGIES = Registry("deliberate.strategies", kind="strategy", plural="strategies", check=_check_strategy)
TASKS = Registry("deliberate.tasks", kind="task", plural="tasks", check=_check_task)
BACKENDS = Registry("deliberate.backends", kind="backend", plural="backends", check=_check_backend)
DATASETS = Registry("deliberate.datasets", kind="dataset kind", plural="kinds", check=_check_dataset, unknown=DatasetError)
REGISTRIES: tuple[Registry, ...] = (STRATEGIES, TASKS, BACKENDS, DATASETS)


def refresh() -> None:
    """Forget every group's entry points (after installing a plugin in this process)."""
    for registry in REGISTRIES:
        registry.refresh()


def report_lines() -> list[str]:
    """``deliberate plugins``: each group's names, where each comes from, and what is wrong."""
    lines = []
    for registry in REGISTRIES:
        rows = registry.report()
        lines.append(f"{registry.group} ({len(rows)})")
        if registry.discovery_error:
            lines.append(f" ! the installed plugins could not be read ({registry.discovery_error}); built-ins only")
        width = max((len(row.entry.name) for row in rows), default=0)
        origin = max((len(row.entry.origin) for row in rows), default=0)
        for row in rows:
            mark = "!" if row.problem else " "
            lines.append(f" {mark}{row.entry.name:<{width}}  {row.entry.origin:<{origin}}  {row.entry.value}")
            if row.problem:
                lines.append(f"   {' ' * width}{row.problem}")
    return lines


def choices(registry: Registry, *, first: Sequence[str] = ()) -> str:
    """"a, b or c": the names a registry offers (plugins included), for help texts."""
    names = [*first, *registry.names()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
