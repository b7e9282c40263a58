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
from deliberate.models import is_server_url, resolve_model

__all__ = ["Backend", "BackendStats", "GenerateRequest", "Sample", "open_backend"]


def open_backend(model: Any = None, **params: Any) -> Backend:
    """A ready backend for ``model``; ``params`` go to the backend's constructor."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model  # already a backend
    if is_server_url(model):
        from deliberate.backends.server import ServerBackend

        return ServerBackend(str(model), **params)
    path = resolve_model(model)
    from deliberate.backends.llama import LlamaBackend

    return LlamaBackend(str(path), **params)
