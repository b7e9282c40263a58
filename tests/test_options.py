"""Strategy and task options: ``key=value`` strings or a dict, converted to the field
types, with unknown keys refused by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliberate import strategies
from deliberate.errors import UnknownNameError, UsageError
from deliberate import tasks
from deliberate.options import check_keywords, describe_options, parse_options


@dataclass
class Knobs:
    breadth: int = 5
    prune_below: float = 0.0
    greedy: bool = False
    style: str = "pair"
    limit: int | None = None


def parse(given):
    return parse_options(Knobs, given, owner="strategy test")


def test_defaults_when_nothing_is_given():
    assert parse(None) == Knobs()
    assert parse([]) == Knobs()
    assert parse({}) == Knobs()


def test_key_value_strings_are_converted_to_field_types():
    knobs = parse(["breadth=3", "prune-below=0.25", "greedy=yes", "style=operand", "limit=7"])
    assert knobs == Knobs(breadth=3, prune_below=0.25, greedy=True, style="operand", limit=7)
    assert type(knobs.breadth) is int and type(knobs.prune_below) is float


def test_whitespace_around_keys_and_values_is_ignored():
    assert parse([" breadth = 9 ", "style= none "]) == Knobs(breadth=9, style="none")


def test_only_the_first_equals_sign_splits():
    assert parse(["style=a=b"]).style == "a=b"


def test_a_mapping_goes_through_the_same_conversion():
    assert parse({"breadth": "4", "greedy": "off"}) == Knobs(breadth=4, greedy=False)
    assert parse({"breadth": 6, "limit": None}) == Knobs(breadth=6, limit=None)


@pytest.mark.parametrize(("text", "value"), [("1", True), ("true", True), ("ON", True), ("0", False), ("no", False), ("False", False)])
def test_bool_spellings(text, value):
    assert parse([f"greedy={text}"]).greedy is value


@pytest.mark.parametrize("text", ["none", "None"])
def test_optional_field_accepts_none(text):
    assert parse([f"limit={text}"]).limit is None


def test_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(UnknownNameError) as caught:
        parse(["bredth=3"])
    message = str(caught.value)
    assert "'bredth'" in message and "strategy test" in message
    for field in dataclasses.fields(Knobs):
        assert field.name in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("item", "expected"),
    [("breadth=three", "int"), ("breadth=1.5", "int"), ("prune-below=high", "float"), ("greedy=maybe", "bool"), ("limit=lots", "int")],
)
def test_a_value_of_the_wrong_type_is_a_usage_error(item, expected):
    with pytest.raises(UsageError) as caught:
        parse([item])
    assert f"expected {expected}" in str(caught.value)
    assert item.split("=")[0].replace("-", "_") in str(caught.value)


@pytest.mark.parametrize("item", ["breadth", "=3", "", " = "])
def test_an_item_without_key_and_value_is_a_usage_error(item):
    with pytest.raises(UsageError, match="key=value"):
        parse([item])


@given(st.integers(min_value=-(10**9), max_value=10**9), st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_survive_the_text_round_trip(breadth, prune):
    assert parse([f"breadth={breadth}", f"prune_below={prune!r}"]) == Knobs(breadth=breadth, prune_below=prune)


def test_describe_options_is_a_plain_dict():
    assert describe_options(Knobs(breadth=2)) == {"breadth": 2, "prune_below": 0.0, "greedy": False, "style": "pair", "limit": None}


# -- the strategies' own options -----------------------------------------------------------------


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_rejects_an_unknown_option_by_name(name):
    cls = strategies.load(name)
    with pytest.raises(UnknownNameError) as caught:
        strategies.make(name, ["no_such_knob=1"])
    message = str(caught.value)
    assert "'no_such_knob'" in message and name in message
    for field in dataclasses.fields(cls.Options):
        assert field.name in message


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_option_round_trips_through_text(name):
    """Whatever a strategy's defaults are, writing them as --opt strings gives them back."""
    cls = strategies.load(name)
    defaults = cls.Options()
    items = [f"{key}={value}" for key, value in dataclasses.asdict(defaults).items()]
    assert strategies.make(name, items).options == defaults
    assert strategies.make(name, None).options == defaults


def test_strategy_options_are_converted():
    bfs = strategies.make("bfs", ["breadth=2", "k=3", "prune-below=0.5"])
    assert (bfs.options.breadth, bfs.options.k, bfs.options.prune_below) == (2, 3, 0.5)


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as caught:
        strategies.make("astar")
    for name in strategies.names():
        assert name in str(caught.value)


def test_think_rejects_a_bad_option_before_using_the_model(scripted):
    import deliberate

    backend = scripted(lambda prompt, request, seed: "Answer: 1")
    with pytest.raises(UnknownNameError, match="'width'"):
        deliberate.think("What is 1?", task="generic", strategy="bfs", model=backend, think=1, options={"width": 2})
    assert backend.history == []


# -- task options: a task's keyword arguments ---------------------------------------------------


def knobs(*, depth: int | None = None, style: str = "pair", greedy: bool = False, scale: float = 1.0, tools: bool = True):
    return depth, style, greedy, scale, tools


def check(given):
    return check_keywords(knobs, given, owner="task test", reserved=("tools",))


def test_task_keywords_are_converted_to_their_annotated_types():
    assert check({"depth": "3", "style": "none", "greedy": "yes", "scale": "2"}) == {
        "depth": 3, "style": "none", "greedy": True, "scale": 2.0}
    # The CLI reads numbers and true/false itself (``--task-opt depth=3``), and a number
    # given for a text option is that text.
    assert check({"depth": 3, "greedy": False, "style": 5, "scale": 1}) == {"depth": 3, "greedy": False, "style": "5", "scale": 1.0}
    assert check({"depth": "none"}) == {"depth": None}
    assert check({}) == {}


@pytest.mark.parametrize("given, expected", [
    ({"depth": "deep"}, "depth='deep'.*expected int"),
    ({"depth": 2.5}, "depth=2.5.*expected int or none"),
    ({"depth": True}, "depth=True.*expected int or none"),
    ({"greedy": "maybe"}, "greedy='maybe'.*expected bool"),
    ({"greedy": 1}, "greedy=1.*expected bool"),
    ({"scale": "fast"}, "scale='fast'.*expected float"),
])
def test_a_task_keyword_of_the_wrong_type_is_a_usage_error(given, expected):
    with pytest.raises(UsageError, match=expected):
        check(given)


def test_an_unknown_or_reserved_task_keyword_is_refused_with_the_known_ones():
    for key in ("colour", "tools"):
        with pytest.raises(UnknownNameError) as caught:
            check({key: 1})
        assert str(caught.value) == f"unknown option {key!r} for task test (options: depth, greedy, scale, style)"


def test_a_task_keyword_without_a_plain_type_is_left_to_the_task():
    from typing import Literal

    def task(*, style: Literal["pair", "none"] = "pair", names: list[str] | None = None, free=None):
        return style

    given = {"style": "diagonal", "names": "a,b", "free": 3}
    assert check_keywords(task, given, owner="plugin task") == given


def test_a_task_that_takes_any_keyword_gets_them_as_given():
    def anything(**options):
        return options

    assert check_keywords(anything, {"colour": "red", "n": "2"}, owner="plugin task") == {"colour": "red", "n": "2"}


@pytest.mark.parametrize("name", tasks.names())
def test_every_task_rejects_an_unknown_option_by_name(name):
    with pytest.raises(UnknownNameError, match=f"unknown option 'no_such_knob' for task {name}"):
        tasks.from_options(name, {"no_such_knob": 1})


@pytest.mark.parametrize("name", tasks.names())
def test_tools_are_not_a_task_option(name):
    with pytest.raises(UsageError, match="use --no-tools"):
        tasks.from_options(name, {"tools": False})


def test_task_options_reach_the_task_converted():
    assert tasks.from_options("math", {"max_depth": "4"}).max_depth == 4
    assert tasks.from_options("game24", {"openings": "pair"}, tools=False).tools is False
    with pytest.raises(UsageError, match="max_depth must be at least 1, got 0"):
        tasks.from_options("generic", {"max_depth": 0})


def test_think_rejects_a_bad_task_option_before_using_the_model(scripted):
    import deliberate

    backend = scripted(lambda prompt, request, seed: "Answer: 1")
    with pytest.raises(UsageError, match="max_depth='deep'"):
        deliberate.think("What is 1?", task="generic", model=backend, think=1, task_options={"max_depth": "deep"})
    assert backend.history == []
