"""Every error deliberate raises on purpose, in one hierarchy.

    DeliberateError                 exit 1 unless a subclass says otherwise
    ├── UsageError                  exit 2: the caller asked for something malformed
    │   ├── DurationError           "--think abc", "0", "-5s"
    │   ├── UnknownNameError        unknown strategy, task or option
    │   └── QuestionError           empty question, or one the task cannot read
    ├── ModelError                  the GGUF file is missing, not a GGUF, or will not load
    ├── BackendError                the model backend failed while running
    │   ├── ContextOverflowError    a prompt does not fit in the context window
    │   └── ServerError             an OpenAI-compatible server cannot be used
    ├── CalculatorError             an arithmetic expression was rejected
    ├── TraceError                  a trace file cannot be read or written
    ├── DatasetError                a benchmark dataset (or judge profile) is missing or malformed
    └── PluginError                 an installed plugin fails to import or is the wrong kind

Lower-level errors (llama.cpp, HTTP, the file system) are translated into these at
the boundary where they happen, with ``raise ... from exc``. The CLI prints
``str(error)`` on one line and exits with ``error.exit_code``.
"""

from __future__ import annotations


class DeliberateError(Exception):
    exit_code: int = 1


class UsageError(DeliberateError):
    exit_code = 2


class DurationError(UsageError):
    pass


class UnknownNameError(UsageError):
    pass


class QuestionError(UsageError):
    pass


class ModelError(DeliberateError):
    pass


class BackendError(DeliberateError):
    pass


class ContextOverflowError(BackendError):
    pass


class ServerError(BackendError):
    pass


class CalculatorError(DeliberateError):
    pass


class TraceError(DeliberateError):
    pass


class DatasetError(DeliberateError):
    pass


class PluginError(DeliberateError):
    """A plugin that cannot be used: it fails to import, or is not what its group needs."""
