"""Strategy options: small dataclasses that reject unknown fields.

Options come from the CLI as ``--opt key=value`` strings and from the API as a dict.
Both pass through ``parse_options``, which converts each value to the field's type
and names the valid fields when a key is unknown.
"""

from __future__ import annotations

import dataclasses
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
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in given:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise UnknownNameError(f"unknown option {key!r} for {owner} (options: {known})")


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
