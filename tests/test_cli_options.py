"""The options several commands share are one definition: same spelling, bounds and help.

These walk the real click command tree that typer builds from ``deliberate.cli.app``, so
a command added later with its own hand-written ``--threads`` or ``--model`` shows up.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from deliberate.cli import app
from deliberate.cli_options import parse_pairs
from deliberate.errors import UsageError


# typer builds on its own copy of click, so commands and options are told apart by shape.
def _commands(group: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            found.update(_commands(command, (*path, name)))
    else:
        found[" ".join(path)] = group
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _option(command: Any, flag: str) -> Any:
    return next((p for p in command.params if p.param_type_name == "option" and flag in p.opts), None)


def _with(flag: str) -> dict[str, Any]:
    return {name: opt for name, command in COMMANDS.items() if (opt := _option(command, flag)) is not None}


def test_the_walk_finds_the_commands_that_load_a_model():
    assert {"solve", "serve", "bench run", "bench speed", "bench judge"} <= set(_with("--model"))
    assert {"solve", "serve", "bench speed", "bench injection", "bench serve"} <= set(_with("--threads"))


@pytest.mark.parametrize("flag", ["--threads", "--gpu-layers", "--opt", "--task-opt", "--mode"])
def test_a_shared_option_reads_the_same_on_every_command(flag):
    options = _with(flag)
    assert options, f"no command takes {flag}"
    shapes = {(tuple(o.opts), o.min, o.max, o.help, o.show_default, o.multiple, repr(o.default)) for o in options.values()}
    assert len(shapes) == 1, {name: (o.opts, o.min, o.help) for name, o in options.items()}


def test_every_model_option_names_the_environment_variable_it_honours():
    for name, option in _with("--model").items():
        assert sorted(option.opts) == ["--model", "-m"], (name, option.opts)
        assert "$DELIBERATE_MODEL" in str(option.show_default), (name, option.show_default)


@pytest.mark.parametrize("command", ["solve", "serve", "bench speed", "bench injection", "bench serve"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_every_command_refuses_fewer_than_one_thread_before_loading(command, value):
    args = [*command.split(), *(["what?"] if command == "solve" else []), "--threads", value]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2, run.output
    assert "--threads" in run.output


def test_pairs_are_read_as_numbers_booleans_or_text():
    assert parse_pairs(["a=1", "b = 2.5", "c=TRUE", "d=x=y", "e="], "--opt") == {
        "a": 1, "b": 2.5, "c": True, "d": "x=y", "e": "",
    }


@pytest.mark.parametrize("pair", ["novalue", "=3", "  =x"])
def test_a_pair_without_a_key_is_a_usage_error_naming_the_flag(pair):
    with pytest.raises(UsageError, match="--task-opt takes key=value"):
        parse_pairs([pair], "--task-opt")
