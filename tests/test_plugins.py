"""The plugin registry: built-ins and plugins found by name through entry points.

Fake plugins replace ``deliberate.plugins._entry_points`` (the one place that reads
installed metadata) and live in module files written to ``tmp_path``, so loading is
the real import machinery. The last test installs ``examples/plugin`` into a fresh
virtual environment and thinks with it in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import json
import re
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deliberate import plugins, strategies
from deliberate.backends import open_backend
from deliberate.backends.scripted import ScriptedBackend
from deliberate.benchmarks import datasets
from deliberate.errors import DatasetError, ModelError, UnknownNameError, UsageError
from deliberate.tasks import make_task
from deliberate.tasks import names as task_names

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugin"

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

needs_tomllib = pytest.mark.skipif(tomllib is None, reason="reading pyproject.toml needs tomllib (Python 3.11+)")


@dataclass
class FakeDistribution:
    name: str
    version: str = "1.0"

    @property
    def metadata(self) -> dict[str, str]:
        return {"Name": self.name}


@dataclass
class FakeEntryPoint:
    """What ``importlib.metadata.entry_points`` yields: a name, a value, its distribution."""

    name: str
    value: str
    group: str
    dist: FakeDistribution | None = None

    def load(self) -> Any:
        return EntryPoint(self.name, self.value, self.group).load()


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """``installed(group, name, value, dist="fake-plugin")`` fakes an installed entry point;
    ``installed.module(name, source)`` writes a module the entry points can name."""
    found: dict[str, list[FakeEntryPoint]] = {}

    class Installer:
        def __call__(self, group: str, name: str, value: str, dist: str | None = "fake-plugin") -> None:
            found.setdefault(group, []).append(FakeEntryPoint(name, value, group, dist and FakeDistribution(dist)))
            plugins.refresh()

        def module(self, name: str, source: str) -> None:
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
            importlib.invalidate_caches()

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_entry_points", lambda group: list(found.get(group, [])))
    plugins.refresh()
    yield Installer()
    plugins.refresh()
    for name in [m for m in sys.modules if m.startswith("fake_") or m == "deliberate_example"]:
        del sys.modules[name]


STRATEGY_SOURCE = """
    from dataclasses import dataclass

    @dataclass
    class Options:
        k: int = 2

    class Lazy:
        name = "lazy"
        Options = Options

        def __init__(self, options):
            self.options = options

        def configure(self, config):
            pass

        def run(self, search):
            pass
"""


# -- the built-ins -------------------------------------------------------------------------


def test_builtin_names_and_messages_are_unchanged():
    assert strategies.names() == ["cot", "best-of-n", "self-consistency", "bfs", "dfs", "beam", "mcts"]
    assert task_names() == ["generic", "game24", "math"]
    assert plugins.BACKENDS.names() == ["llama", "server"]
    assert datasets.kinds() == list(datasets.KINDS)
    with pytest.raises(UnknownNameError, match=r"^unknown strategy 'astar' \(strategies: cot, best-of-n, "):
        strategies.load("astar")
    with pytest.raises(UnknownNameError, match=r"^unknown task 'chess' \(tasks: generic, game24, math\)$"):
        make_task("chess")
    with pytest.raises(DatasetError, match=r"^unknown dataset kind 'chess' \(kinds: game24, gsm8k, "):
        datasets.load("chess", ".")


@needs_tomllib
def test_the_builtin_table_says_what_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    groups = {group: list(entries.items()) for group, entries in declared.items() if group.startswith("deliberate.")}
    assert groups == {group: list(entries.items()) for group, entries in plugins.BUILTINS.items()}


@needs_tomllib
def test_pyproject_installs_every_package_in_the_tree():
    """A wheel holds only the packages pyproject lists: a package folder missing from the
    list (as ``deliberate.search`` was) installs a deliberate that cannot import itself,
    though an editable install hides it."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: ROOT / path for name, path in setuptools["package-dir"].items()}
    found = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((name, *parts)))
    assert sorted(setuptools["packages"]) == sorted(found)


def test_every_builtin_loads_and_passes_its_check():
    for registry in plugins.REGISTRIES:
        assert [row.problem for row in registry.report()] == [None] * len(registry.names()), registry.group


def test_deliberates_own_entry_points_are_the_builtins(installed):
    # An installed deliberate declares the built-ins itself; the table only fills gaps.
    installed("deliberate.strategies", "bfs", "deliberate.strategies.bfs:BreadthFirst", dist="deliberate")
    entry = plugins.STRATEGIES.entry("bfs")
    assert entry.builtin and entry.origin == "built-in" and entry.distribution == "deliberate 1.0"
    assert plugins.STRATEGIES.entry("dfs").origin == "built-in (in-code table)"
    assert strategies.names()[:7] == ["cot", "best-of-n", "self-consistency", "bfs", "dfs", "beam", "mcts"]


# -- plugins ------------------------------------------------------------------------------


def test_a_plugin_strategy_is_found_by_name_and_imported_only_when_used(installed):
    installed.module("fake_lazy", STRATEGY_SOURCE)
    installed("deliberate.strategies", "lazy", "fake_lazy:Lazy")
    assert strategies.names()[-1] == "lazy"
    assert "fake_lazy" not in sys.modules  # listing names runs no plugin code
    assert plugins.STRATEGIES.entry("lazy").origin == "plugin fake-plugin 1.0"
    assert strategies.make("lazy", ["k=5"]).options.k == 5
    assert "fake_lazy" in sys.modules
    with pytest.raises(UnknownNameError, match="'astar'.*mcts, lazy"):
        strategies.load("astar")


def test_a_plugin_cannot_shadow_a_builtin(installed):
    installed.module("fake_lazy", STRATEGY_SOURCE)
    installed("deliberate.strategies", "bfs", "fake_lazy:Lazy")
    assert strategies.load("bfs").__name__ == "BreadthFirst"
    assert "fake_lazy" not in sys.modules
    [row] = [row for row in plugins.STRATEGIES.report() if row.entry.value == "fake_lazy:Lazy"]
    assert row.problem == "shadowed: the built-in strategy 'bfs' wins; this one is ignored"


def test_two_plugins_with_one_name_are_both_refused(installed):
    installed.module("fake_lazy", STRATEGY_SOURCE)
    installed("deliberate.strategies", "lazy", "fake_lazy:Lazy", dist="one")
    installed("deliberate.strategies", "lazy", "fake_lazy:Lazy", dist="two")
    assert "lazy" not in strategies.names()
    with pytest.raises(plugins.PluginError, match="'lazy' is provided by more than one plugin.*one 1.0 and plugin two 1.0"):
        strategies.load("lazy")
    assert [row.problem.split(":")[0] for row in plugins.STRATEGIES.report() if row.problem] == ["conflict", "conflict"]


@pytest.mark.parametrize(
    ("source", "value", "error"),
    [
        ("import no_such_module\n", "fake_broken:Thing", r"is broken: import failed: ModuleNotFoundError: No module named 'no_such_module'$"),
        ("raise RuntimeError('line one\\nline two')\n", "fake_broken:Thing", r"is broken: import failed: RuntimeError: line one line two$"),
        ("raise SystemExit(3)\n", "fake_broken:Thing", r"is broken: import failed: SystemExit: 3$"),
        ("Thing = 1\n", "fake_broken:Other", r"is broken: import failed: AttributeError: .*Other"),
        ("Thing = 42\n", "fake_broken:Thing", r"is broken: wrong kind: expected a strategy class with an Options dataclass, got int 42$"),
    ],
    ids=["import-error", "multi-line-error", "system-exit", "missing-attribute", "wrong-type"],
)
def test_a_broken_plugin_is_named_in_one_line_when_used(installed, source, value, error):
    installed.module("fake_broken", source)
    installed("deliberate.strategies", "broken", value, dist="broken-dist")
    assert "broken" in strategies.names()  # it is listed: the error comes when it is used
    with pytest.raises(plugins.PluginError) as caught:
        strategies.make("broken")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"strategy 'broken' (plugin broken-dist 1.0, {value}) ")
    assert caught.match(error)
    assert caught.value.exit_code == 1
    assert strategies.load("bfs").__name__ == "BreadthFirst"  # the rest still works


def test_deliberate_plugins_lists_every_group_and_survives_broken_plugins(installed):
    from deliberate.cli import app

    installed.module("fake_lazy", STRATEGY_SOURCE)
    installed.module("fake_broken", "import no_such_module\n")
    installed("deliberate.strategies", "lazy", "fake_lazy:Lazy")
    installed("deliberate.strategies", "broken", "fake_broken:Thing")
    installed("deliberate.tasks", "broken-task", "fake_lazy:Lazy")  # a strategy is not a task
    installed("deliberate.strategies", "bfs", "fake_lazy:Lazy", dist="shadow")
    run = CliRunner().invoke(app, ["plugins"])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [
        "deliberate.strategies (10)", "deliberate.tasks (4)", "deliberate.backends (2)", "deliberate.datasets (6)",
    ]
    assert any(line.split()[:3] == ["lazy", "plugin", "fake-plugin"] for line in lines)
    marked = [line.split()[0] for line in lines if line.startswith(" !")]
    assert marked == ["!broken", "!bfs", "!broken-task"]
    assert "broken: import failed: ModuleNotFoundError: No module named 'no_such_module'" in run.output
    assert "broken: wrong kind: task class Lazy has no answer, is_terminal, key, " in run.output
    assert any("shadowed: the built-in strategy 'bfs' wins" in line for line in lines)


def test_unreadable_metadata_leaves_the_builtins_working(monkeypatch):
    def broken(group: str) -> list[Any]:
        raise ValueError("a corrupt dist-info")

    monkeypatch.setattr(plugins, "_entry_points", broken)
    plugins.refresh()
    try:
        assert strategies.load("bfs").__name__ == "BreadthFirst"
        assert plugins.STRATEGIES.discovery_error == "ValueError: a corrupt dist-info"
        assert any("could not be read (ValueError: a corrupt dist-info)" in line for line in plugins.report_lines())
    finally:
        plugins.refresh()


# -- tasks ---------------------------------------------------------------------------------

TASK_SOURCE = """
    from deliberate.tasks.generic import GenericTask

    class Plain(GenericTask):
        name = "plain"

        def __init__(self, **options):
            self.given = options
            super().__init__()

    class WithTools(Plain):
        name = "with-tools"
        tool_names = ("abacus",)
"""


def test_plugin_tasks_get_tools_only_when_they_declare_some(installed):
    installed.module("fake_tasks", TASK_SOURCE)
    installed("deliberate.tasks", "plain", "fake_tasks:Plain")
    installed("deliberate.tasks", "with-tools", "fake_tasks:WithTools")
    assert task_names() == ["generic", "game24", "math", "plain", "with-tools"]
    assert make_task("plain", tools=False).given == {}
    assert make_task("with-tools", tools=False, depth=3).given == {"tools": False, "depth": 3}
    with pytest.raises(UnknownNameError, match=r"'chess' \(tasks: generic, game24, math, plain, with-tools\)"):
        make_task("chess")


# -- backends -------------------------------------------------------------------------------

BACKEND_SOURCE = """
    from deliberate.backends.scripted import ScriptedBackend

    def echo(model, **params):
        backend = ScriptedBackend(lambda prompt, request, seed: f"Answer: {model}")
        backend.params = params
        return backend

    def not_a_backend(model, **params):
        return "a string"

    def failing(model, **params):
        raise ConnectionError("refused")
"""


def test_a_plugin_backend_is_chosen_by_its_name_before_a_colon(installed):
    installed.module("fake_backends", BACKEND_SOURCE)
    installed("deliberate.backends", "echo", "fake_backends:echo")
    installed("deliberate.backends", "wrong", "fake_backends:not_a_backend")
    installed("deliberate.backends", "failing", "fake_backends:failing")
    backend = open_backend("echo:hello:world", n_threads=2)
    assert isinstance(backend, ScriptedBackend) and backend.params == {"n_threads": 2}
    assert backend.respond("", None, 0) == "Answer: hello:world"  # only the first colon splits
    with pytest.raises(plugins.PluginError, match=r"^backend 'wrong' \(plugin fake-plugin 1.0, fake_backends:not_a_backend\) returned str, not a backend"):
        open_backend("wrong:x")
    with pytest.raises(plugins.PluginError, match=r"backend 'failing' .* failed to open 'x': ConnectionError: refused$"):
        open_backend("failing:x")


def test_builtin_backends_by_name_and_paths_with_colons(tmp_path):
    with pytest.raises(ModelError, match="model file not found: /nonexistent.gguf"):
        open_backend("llama:/nonexistent.gguf")
    with pytest.raises(ModelError, match="model file not found: nosuch:model.gguf"):
        open_backend("nosuch:model.gguf")  # no backend is called nosuch: a path, as before
    with pytest.raises(UsageError, match="needs an http:// or https:// URL"):
        open_backend("server:localhost:8080")
    with pytest.raises(UsageError, match="n_ctx only apply to a local GGUF"):
        open_backend("http://127.0.0.1:9/v1", n_ctx=512)


# -- datasets -------------------------------------------------------------------------------

DATASET_SOURCE = """
    from deliberate.benchmarks.datasets import Dataset, Item

    def read(path):
        return [Item(f"{path.name}:{i}", line, line.upper(), "generic")
                for i, line in enumerate(path.read_text().split(), 1)]

    SHOUT = Dataset(read, lambda answer, gold: answer == gold, default_file="words.txt", pattern="*.txt")
    NOT_A_DATASET = {"read": read}
"""


def test_a_plugin_dataset_reads_and_scores_like_a_builtin(installed, tmp_path):
    installed.module("fake_datasets", DATASET_SOURCE)
    installed("deliberate.datasets", "shout", "fake_datasets:SHOUT")
    installed("deliberate.datasets", "bad", "fake_datasets:NOT_A_DATASET")
    folder = tmp_path / "shout"
    folder.mkdir()
    (folder / "words.txt").write_text("hello there\n")
    items = datasets.load("shout", folder, start=1)
    assert [(i.id, i.question, i.gold) for i in items] == [("words.txt:2", "there", "THERE")]
    assert datasets.score("shout", "THERE", items[0]) and not datasets.score("shout", "there", items[0])
    with pytest.raises(DatasetError, match=r"kinds: game24, gsm8k, math500, prontoqa, bbh, generic, bad, shout\)"):
        datasets.score("chess", "e4", items[0])
    with pytest.raises(plugins.PluginError, match="expected a deliberate.benchmarks.datasets.Dataset, got dict"):
        datasets.load("bad", folder)
    (folder / "words.txt").unlink()
    with pytest.raises(DatasetError, match="shout dataset folder .* has no words.txt; pass the file itself"):
        datasets.load("shout", folder)


# -- the example plugin ---------------------------------------------------------------------

# A scripted model for the parity task: it writes the right addition for the state the
# step prompt ends with.
PARITY_MODEL = r'''
import re

def respond(prompt, request, seed):
    left, total = re.findall(r"Numbers left: ([-\d ]*)\nTotal: (-?\d+)\nStep:", prompt)[-1]
    number = int(left.split()[0])
    return f" {total} + {number} = {int(total) + number}\n"
'''


def _example_entry_points() -> dict[str, dict[str, str]]:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    return project["entry-points"]


@needs_tomllib
def test_the_example_plugin_thinks_in_process(installed, monkeypatch):
    """The example's own entry-point lines, faked as installed; examples/plugin on sys.path."""
    import deliberate

    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in examples/plugin
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for group, entries in _example_entry_points().items():
        for name, value in entries.items():
            installed(group, name, value, dist="deliberate-example")
    namespace: dict[str, Any] = {}
    exec(PARITY_MODEL, namespace)
    backend = ScriptedBackend(namespace["respond"])
    result = deliberate.think("Is the sum of 3 8 5 even or odd?", task="parity", strategy="greedy-first", model=backend, think=5)
    assert (result.answer, result.solved, result.stats.stop_reason) == ("even", True, "solved")
    assert result.trace["meta"]["strategy"] == "greedy-first" and result.trace["meta"]["task"] == "parity"
    assert [result.graph[n]["thought"] for n in result.graph.path(result.trace["meta"]["answer_node"])][1:] == [
        "0 + 3 = 3", "3 + 8 = 11", "11 + 5 = 16",
    ]


# The same player for the example's function backend, respond(prompt, seed) -> text. It
# is asked for judgements too (the backend's slow label scoring samples its replies).
FUNCTION_MODEL = PARITY_MODEL.replace("def respond(prompt, request, seed):", "def play(prompt, request, seed):") + r'''

def respond(prompt, seed):
    return " likely" if prompt.rstrip().endswith(("Judgement:", "is")) else play(prompt, None, seed)
'''


def test_the_readme_shows_the_examples_code_exactly():
    """README "Extending": each Python block is a piece of examples/plugin, verbatim, so
    the tests that install and run the example run what the README shows."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Extending") : readme.index("## Development")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    source = (EXAMPLE / "deliberate_example.py").read_text(encoding="utf-8")
    assert len(blocks) == 3  # a strategy, a task, a backend
    for block in blocks:
        assert block in source, block[:80]
    sizes = [len(block.strip().splitlines()) for block in blocks]
    assert sizes[0] <= 40 and sizes[1] <= 45 and sizes[2] <= 35, sizes  # about 30, 40 and 30 lines


INSTALLED_SCRIPT = PARITY_MODEL + r'''
import json
import deliberate
from deliberate import plugins
from deliberate.backends.scripted import ScriptedBackend

result = deliberate.think("Is the sum of 2 4 7 even or odd?", task="parity", strategy="greedy-first",
                          model=ScriptedBackend(respond), think=5)
by_function = deliberate.think("Is the sum of 2 4 7 even or odd?", task="parity", strategy="greedy-first",
                               model="function:parity_model:respond", think=5)
print(json.dumps({
    "answer": result.answer, "solved": result.solved, "stop": result.stats.stop_reason,
    "strategy": plugins.STRATEGIES.entry("greedy-first").origin, "task": plugins.TASKS.entry("parity").origin,
    "backend": plugins.BACKENDS.entry("function").origin,
    "function": [by_function.answer, by_function.solved, by_function.trace["meta"]["backend"]["backend"]],
}))
'''


@needs_tomllib
def test_the_example_plugin_installs_into_a_fresh_venv_and_thinks(tmp_path):
    """pip installs examples/plugin (no network, no build isolation) and a fresh
    interpreter thinks with its strategy and task. Slow-ish: a few seconds.

    The new environment sees this one's packages (deliberate, editable or not, and its
    dependencies) through a .pth file that adds this interpreter's site directories.
    ``--system-site-packages`` would not do: run from a virtual environment, it shows
    the base interpreter's packages, not this environment's.
    """
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment here: {made.stderr.strip()[-300:]}")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args: str | Path, interpreter: Path = python) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(interpreter), *map(str, args)], capture_output=True, text=True, env=env, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    import site

    site_packages = Path(run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    parents = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    (site_packages / "_deliberate_parent.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n"
    )
    run("-m", "pip", "--python", python, "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--no-cache-dir", "--disable-pip-version-check", "--no-input", "--quiet", EXAMPLE, interpreter=Path(sys.executable))

    (site_packages / "parity_model.py").write_text(FUNCTION_MODEL)  # the function backend's "model"
    outcome = json.loads(run("-c", INSTALLED_SCRIPT).stdout.strip().splitlines()[-1])
    assert outcome == {
        "answer": "odd", "solved": True, "stop": "solved",
        "strategy": "plugin deliberate-example 0.1.0", "task": "plugin deliberate-example 0.1.0",
        "backend": "plugin deliberate-example 0.1.0", "function": ["odd", True, "FunctionBackend"],
    }
    listing = run("-m", "deliberate", "plugins").stdout
    assert "greedy-first" in listing and "parity" in listing and "function" in listing and " !" not in listing
    solved = run("-m", "deliberate", "solve", "Is the sum of 3 8 5 even or odd?", "--task", "parity",
                 "--strategy", "greedy-first", "--model", "function:parity_model:respond", "--think", "5s")
    assert solved.stdout.strip() == "even"
    for command in (("solve", "--help"), ("bench", "game24", "--help")):
        shown = run("-m", "deliberate", *command).stdout
        assert "greedy-first" in shown, command
    assert "parity" in run("-m", "deliberate", "bench", "--help").stdout  # the dataset kind
    questions = tmp_path / "parity.txt"
    questions.write_text("Is the sum of 1 2 even or odd?\nIs the sum of 2 2 4 even or odd?\n")
    out = tmp_path / "parity.jsonl"
    run("-m", "deliberate", "bench", "parity", "--data", questions, "--strategy", "greedy-first",
        "--model", "function:parity_model:respond", "--think", "5s", "--quiet", "--out", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["gold"], r["answer"], r["correct"]) for r in records] == [
        ("parity.txt:1", "odd", "odd", True), ("parity.txt:2", "even", "even", True),
    ]
