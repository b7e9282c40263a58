"""Strategy and task options: unknown names are rejected, values converted by type.

Strategy options are small dataclasses. They come from the CLI as ``--opt key=value``
strings and from the API as a dict; both pass through ``parse_options``, which
converts each value to the field's type and names the valid fields when a key is
unknown. Task options (``--task-opt``) are a task's keyword arguments and pass
through ``check_keywords`` the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_type_hints

from deliberate.errors import UnknownNameError, UsageError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_options(cls: type[T], given: Mapping[str, Any] | Iterable[str] | None, *, owner: str) -> T:
    """An instance of the options dataclass ``cls`` from a mapping or ``key=value`` strings."""
    pairs: dict[str, Any] = {}
    if isinstance(given, Mapping):
        pairs = dict(given)
    elif given is not None:
        for item in given:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise UsageError(f"option {item!r} must look like key=value")
            pairs[key.strip().replace("-", "_")] = value.strip()
    check_names(cls, pairs, owner=owner)
    hints = get_type_hints(cls)
    return cls(**{key: _convert(raw, hints[key], key, owner) for key, raw in pairs.items()})


def check_names(cls: type, given: Mapping[str, Any], *, owner: str) -> None:
    """An ``UnknownNameError`` naming the valid fields, for the first key of ``given``
    that is not a field of the dataclass ``cls``."""
    _refuse_unknown(given, {f.name for f in dataclasses.fields(cls)}, owner)  # type: ignore[arg-type]


def _refuse_unknown(given: Iterable[str], names: Iterable[str], owner: str) -> None:
    """An ``UnknownNameError`` naming ``names``, for the first of ``given`` not among them."""
    known = set(names)
    for key in given:
        if key not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise UnknownNameError(f"unknown option {key!r} for {owner} (options: {listed})")


def check_keywords(function: Any, given: Mapping[str, Any], *, owner: str, reserved: Iterable[str] = ()) -> dict[str, Any]:
    """``given`` as keyword arguments of ``function`` (a task's ``__init__``): each key
    one of its keyword parameters, each value of its annotated type, converted as
    ``parse_options`` converts (and "5" or 5 for a ``str`` parameter is the text "5").

    An unknown key, or one of ``reserved`` (set elsewhere, as a task's ``tools`` is),
    is an ``UnknownNameError`` naming the valid ones; a value of the wrong type a
    one-line ``UsageError``. A function that takes ``**kwargs`` accepts
    any key, and a parameter without an annotation any value.
    """
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(given)
    skip = {"self", *reserved}
    _refuse_unknown(given, [n for n, p in parameters.items()
                            if n not in skip and p.kind is not inspect.Parameter.VAR_POSITIONAL], owner)
    try:
        hints = get_type_hints(function)
    except Exception:  # an annotation that does not resolve: leave the values to the function
        hints = {}
    checked: dict[str, Any] = {}
    for key, raw in given.items():
        kinds = _scalar_kinds(hints.get(key))
        if not kinds:  # no annotation, or one that is not a plain type (Literal, list[str]): the task checks
            checked[key] = raw
            continue
        hint = hints[key]
        if str in kinds and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = str(raw)  # the CLI reads "5" as a number
        value = _convert(raw, hint, key, owner)
        if not _is_one_of(value, kinds):
            names_ = " or ".join(t.__name__ if t is not type(None) else "none" for t in kinds)
            raise UsageError(f"option {key}={raw!r} for {owner}: expected {names_}")
        checked[key] = float(value) if float in kinds and type(value) is int else value
    return checked


def _scalar_kinds(hint: Any) -> list[type]:
    """The types a parameter annotated ``hint`` takes: ``int``, ``str | None``; else none."""
    if isinstance(hint, type):
        return [hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if all(isinstance(t, type) for t in args):
            return list(args)
    return []


def _is_one_of(value: Any, kinds: list[type]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, not to a user
        return bool in kinds
    return any(isinstance(value, k) for k in kinds) or (float in kinds and isinstance(value, int))


def _convert(raw: Any, hint: Any, key: str, owner: str) -> Any:
    kind = hint if isinstance(hint, type) else next(
        (t for t in getattr(hint, "__args__", ()) if t is not type(None)), str
    )
    if raw is None or not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if text.lower() == "none" and type(None) in getattr(hint, "__args__", ()):
            return None
        return kind(text)
    except ValueError:
        raise UsageError(f"option {key}={raw!r} for {owner}: expected {kind.__name__}") from None


def describe_options(options: Any) -> dict[str, Any]:
    return dataclasses.asdict(options)
