"""Model backends. ``open_backend`` picks one from what the user passed as the model.

- a ``Backend`` object: used as it is;
- ``http://...`` or ``https://...``: an OpenAI-compatible server (``server.py``);
- a path, ``$DELIBERATE_MODEL`` or nothing: a GGUF in this process (``llama.py``).

Implementations are imported only when chosen, so the core never loads llama.cpp.
"""

from __future__ import annotations

import os
from typing import Any

from deliberate.backends.base import Backend, BackendStats, GenerateRequest, Sample
from deliberate.errors import UsageError
from deliberate.models import is_server_url, resolve_model

# Settings of the in-process llama.cpp context; a server has its own.
LOCAL_ONLY = {"n_ctx", "n_batch", "n_seq_max", "n_threads", "n_threads_batch", "n_gpu_layers", "cache_fraction", "exact_batching"}

__all__ = ["Backend", "BackendStats", "GenerateRequest", "Sample", "open_backend"]


def open_backend(model: Any = None, **params: Any) -> Backend:
    """A ready backend for ``model``; ``params`` go to the backend's constructor."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model  # already a backend
    if is_server_url(model):
        from deliberate.backends.server import ServerBackend

        local = sorted(set(params) & LOCAL_ONLY)
        if local:
            raise UsageError(f"{', '.join(local)} only apply to a local GGUF, not to a server at {model}")
        return ServerBackend(str(model), **params)
    path = resolve_model(model)
    from deliberate.backends.llama import LlamaBackend

    return LlamaBackend(str(path), **params)
