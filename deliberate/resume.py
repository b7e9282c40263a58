"""Resuming a saved trace: which settings the new search runs with.

Every setting the trace recorded is restored unless it is given again; a setting given
anew that differs from the trace's is an override, and the new trace records it as
``{"was": ..., "now": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deliberate.api import ThinkOptions

# Settings a trace's meta.config holds and a resume restores, unless given again.
RESUMED_CONFIG = ("verifier", "chat", "evaluator", "mode", "max_nodes", "tools")


def given_settings(question: str | None, opts: ThinkOptions) -> dict[str, Any]:
    """The settings a resume can restore, as given to ``think`` (None: not given)."""
    names = ("task", "strategy", "seed", "options", "task_options", "verifier", "evaluator", "mode", "chat",
             "max_nodes", "tools")  # fmt: skip
    return {"question": question, **{name: getattr(opts, name) for name in names}}


def resume_settings(previous: dict[str, Any] | None, given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings to run with: what was given, else what the resumed trace used.

    Returns them with the overrides: each setting given anew that differs from the
    trace's, as ``{"was": ..., "now": ...}``.
    """
    if previous is None:
        return dict(given), {}
    meta = previous["meta"]
    config = meta.get("config", {})
    recorded = {
        "question": meta.get("question"),
        "task": meta.get("task"),
        "strategy": meta.get("strategy"),
        "seed": meta.get("seed"),
        "options": meta.get("options"),
        "task_options": meta.get("task_options"),
        **{key: config.get(key) for key in RESUMED_CONFIG},
    }
    settings, overrides = {}, {}
    for key, value in given.items():
        if value is None:
            settings[key] = recorded.get(key)
            continue
        settings[key] = value
        was = recorded.get(key)
        if was is not None and _comparable(value) != _comparable(was):
            overrides[key] = {"was": was, "now": _comparable(value)}
    return settings, overrides


def _comparable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    return value
