"""Loading a GGUF with llama.cpp's low-level API, and the small things around it.

This module and the ``llama`` package are the only ones that import ``llama_cpp``. Failures
from llama.cpp are translated into ``ModelError`` here, with the last line llama.cpp
logged, so the user sees why a file would not load.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import llama_cpp as lc

from deliberate.errors import BackendError, ModelError
from deliberate.models import check_gguf

log = logging.getLogger("deliberate.llama")

# llama.cpp logs through one global C callback. The ctypes wrapper must stay referenced
# for as long as the library may call it, hence a module-level object.
_recent: deque[str] = deque(maxlen=20)


@lc.llama_log_callback
def _on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", errors="replace").rstrip()
    if line:
        _recent.append(line)
        log.debug(line)


_initialized = False


def _init_once() -> None:
    global _initialized
    if not _initialized:
        lc.llama_log_set(_on_log, ctypes.c_void_p(0))
        lc.llama_backend_init()
        _initialized = True


def physical_cores() -> int:
    """Physical cores we may run on: llama.cpp gains nothing from SMT siblings."""
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is a dependency
        count = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(count or available or 1, available or 1))


def amx_build() -> bool:
    """Whether this llama.cpp build uses AMX matrix kernels on this CPU."""
    _init_once()
    return b"AMX_INT8 = 1" in (lc.llama_print_system_info() or b"")


@contextmanager
def llama_class_kernels(extra_bufts: bool | None = None) -> Iterator[None]:
    """While active, llama-cpp-python's own ``Llama`` class loads weights as
    ``LoadedModel`` does: without extra buffer types where the build uses AMX (or where
    ``extra_bufts`` is False). For baselines and servers run beside the engine."""
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params
    if extra_bufts is None:
        extra_bufts = not amx_build() or os.environ.get("DELIBERATE_ALLOW_AMX") == "1"

    def params() -> Any:
        value = default()
        value.use_extra_bufts = value.use_extra_bufts and extra_bufts
        return value

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = default


def run_llama_cpp_server() -> None:
    """``python -m llama_cpp.server`` (arguments from ``sys.argv``), AMX-safe as above."""
    import runpy

    with llama_class_kernels():
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


class LoadedModel:
    """A llama.cpp model and its vocabulary: tokenize, detokenize, metadata."""

    def __init__(self, path: str | os.PathLike[str], *, n_gpu_layers: int = 0, repack: bool = True) -> None:
        _init_once()
        self.path = check_gguf(Path(path))
        params = lc.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        # llama.cpp repacks CPU weights into interleaved tiles for faster matrix products
        # (prefill most of all). Those kernels round differently with the number of rows
        # in a batch, so without repacking a sequence's greedy tokens no longer depend on
        # what else shares its batch.
        # On CPUs with AMX (Sapphire Rapids and later), a native build puts Q4_K weights
        # in llama.cpp's AMX buffers, whose matrix product segfaults on the first decode
        # (ggml-org/llama.cpp#20824). There every extra buffer type stays off, repacking
        # with it: slower, never a crash. DELIBERATE_ALLOW_AMX=1 turns them back on.
        self.extra_bufts = repack and (not amx_build() or os.environ.get("DELIBERATE_ALLOW_AMX") == "1")
        params.use_extra_bufts = self.extra_bufts
        _recent.clear()
        self.ptr = lc.llama_model_load_from_file(str(self.path).encode(), params)
        if not self.ptr:
            reason = next((line for line in reversed(_recent) if "error" in line.lower()), "")
            detail = f": {reason}" if reason else ""
            raise ModelError(f"llama.cpp could not load {self.path}{detail}")
        self.vocab = lc.llama_model_get_vocab(self.ptr)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.ptr)
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self._piece = ctypes.create_string_buffer(256)

    def tokenize(self, text: str, *, bos: bool = True, special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buffer = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self.vocab, data, len(data), buffer, capacity, bos and self.add_bos, special)
        if n < 0:  # the buffer was too small; -n is the size needed
            capacity = -n
            buffer = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buffer, capacity, bos and self.add_bos, special)
        if n < 0:
            raise BackendError("llama.cpp could not tokenize the prompt")
        return list(buffer[:n])

    def piece(self, token: int) -> bytes:
        n = lc.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, big, len(big), 0, False)
            return big.raw[:n]
        return self._piece.raw[:n]

    @functools.cached_property
    def control_pattern(self) -> re.Pattern[str] | None:
        """A regex matching the text of any control token (``<|im_end|>``, ``<start_of_turn>``...).

        With ``special=True`` tokenization turns these strings back into control tokens,
        so text that did not come from the chat template must not contain them. Read
        from the vocabulary on first use (a chat prompt), not at load.
        """
        found = set()
        for token in range(self.n_vocab):
            if lc.llama_vocab_get_attr(self.vocab, token) & lc.LLAMA_TOKEN_ATTR_CONTROL:
                n = lc.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, True)
                text = self._piece.raw[: max(n, 0)].decode("utf-8", errors="replace")
                if len(text) > 1:
                    found.add(text)
        longest_first = sorted(found, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, longest_first))) if found else None

    def is_end(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def metadata(self, key: str) -> str | None:
        size = 1 << 16
        buffer = ctypes.create_string_buffer(size)
        n = lc.llama_model_meta_val_str(self.ptr, key.encode(), buffer, size)
        if n < 0:
            return None
        if n >= size:  # long chat templates
            buffer = ctypes.create_string_buffer(n + 1)
            lc.llama_model_meta_val_str(self.ptr, key.encode(), buffer, n + 1)
        return buffer.value.decode("utf-8", errors="replace")

    def token_text(self, token_id_key: str) -> str:
        value = self.metadata(token_id_key)
        if value is None:
            return ""
        return self.piece(int(value)).decode("utf-8", errors="replace")

    def chat_formatter(self) -> Any:
        template = self.metadata("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        return Jinja2ChatFormatter(
            template,
            eos_token=self.token_text("tokenizer.ggml.eos_token_id"),
            bos_token=self.token_text("tokenizer.ggml.bos_token_id"),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.path.name,
            "architecture": self.metadata("general.architecture"),
            "n_params": int(lc.llama_model_n_params(self.ptr)),
            "n_ctx_train": self.n_ctx_train,
            "extra_bufts": self.extra_bufts,  # repacked (and AMX) weights: see __init__
        }

    def close(self) -> None:
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None
