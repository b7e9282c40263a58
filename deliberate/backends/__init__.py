"""Model backends. ``open_backend`` picks one from what the user passed as the model.

- a ``Backend`` object: used as it is;
- ``http://...`` or ``https://...``: an OpenAI-compatible server (``server.py``);
- ``NAME:MODEL``, where NAME is a backend in the ``deliberate.backends`` entry-point
  group: that backend, given MODEL (the rest of the string, perhaps empty). The
  built-ins are ``llama`` (``llama:PATH.gguf``) and ``server`` (``server:URL``); a
  plugin adds its own (``--model echo:hello``). A string whose part before the first
  colon is not a backend's name is a path, as before;
- a path, ``$DELIBERATE_MODEL`` or nothing: a GGUF in this process (``backends.llama``).

A backend entry point is a callable ``(model: str, **params) -> Backend``; ``params``
are the backend settings (``n_threads``, ``n_ctx``, ...). Implementations are imported
only when chosen, so the core never loads llama.cpp.
"""

from __future__ import annotations

import os
from typing import Any

from deliberate.backends.base import Backend, BackendStats, GenerateRequest, Sample
from deliberate.errors import DeliberateError, UsageError
from deliberate.models import is_server_url, resolve_model
from deliberate.plugins import BACKENDS, PluginError

# Settings of the in-process llama.cpp context; a server has its own.
LOCAL_ONLY = {"n_ctx", "n_batch", "n_seq_max", "n_threads", "n_threads_batch", "n_gpu_layers", "cache_fraction", "exact_batching"}

__all__ = ["Backend", "BackendStats", "GenerateRequest", "Sample", "open_backend", "open_llama", "open_server"]


def open_backend(model: Any = None, **params: Any) -> Backend:
    """A ready backend for ``model``; ``params`` go to the backend's constructor."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model  # already a backend
    if is_server_url(model):
        return open_server(str(model), **params)
    name, colon, rest = model.partition(":") if isinstance(model, str) else ("", "", "")
    if colon and name in BACKENDS:
        return _open_named(name, rest, params)
    return open_llama(model, **params)


def open_llama(model: str | os.PathLike[str] | None = None, **params: Any) -> Backend:
    """The built-in ``llama`` backend: a GGUF path (or none: ``$DELIBERATE_MODEL``, else the embedded model)."""
    path = resolve_model(model or None)
    from deliberate.backends.llama import LlamaBackend

    return LlamaBackend(str(path), **params)


def open_server(url: str, **params: Any) -> Backend:
    """The built-in ``server`` backend: an OpenAI-compatible server at ``url``."""
    if not is_server_url(url):
        raise UsageError(f"the server backend needs an http:// or https:// URL, got {url!r}")
    local = sorted(set(params) & LOCAL_ONLY)
    if local:
        raise UsageError(f"{', '.join(local)} only apply to a local GGUF, not to a server at {url}")
    from deliberate.backends.server import ServerBackend

    return ServerBackend(url, **params)


def _open_named(name: str, model: str, params: dict[str, Any]) -> Backend:
    entry = BACKENDS.entry(name)
    factory = BACKENDS.load(name)
    if entry.builtin:
        return factory(model, **params)
    where = f"backend {name!r} ({entry.origin}, {entry.value})"
    try:
        backend = factory(model, **params)
    except DeliberateError:
        raise
    except Exception as exc:  # a plugin's own failure, named at this boundary
        raise PluginError(f"{where} failed to open {model!r}: {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    if not isinstance(backend, Backend):
        raise PluginError(f"{where} returned {type(backend).__name__}, not a backend (generate, score_labels, ...)")
    return backend
