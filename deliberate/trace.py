"""The trace: one JSON file with everything a search did.

    {"format": "deliberate-trace/2",
     "meta":   question, task, strategy and options, model file and hash prefix,
               backend parameters, seed, budget, timings, stop reason, answer;
     "events": expand / evaluate / verify / prune / backtrack / finish / answer,
               each with "t", seconds since thinking began;
     "graph":  the thought graph as networkx node-link data}

Format 2 (this one) holds every node field of ``graph.NodeData`` on every node, and
each tool call's ``ok`` and ``prefill``. Format 1 traces still load: their nodes get
the fields they lack at their start values (``ThoughtGraph.from_data``).

Traces are written to a temporary file in the same folder and renamed into place, so
a crash or Ctrl-C never leaves half a trace behind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from deliberate.errors import TraceError, UsageError
from deliberate.graph import ThoughtGraph

FORMAT = "deliberate-trace/2"
READS = ("deliberate-trace/1", FORMAT)  # the formats this version loads


def readable(trace: Any) -> bool:
    """Whether ``trace`` is a trace object in a format this version loads."""
    return isinstance(trace, dict) and trace.get("format") in READS


def build_trace(meta: dict[str, Any], events: list[dict[str, Any]], graph: ThoughtGraph) -> dict[str, Any]:
    return {"format": FORMAT, "meta": meta, "events": events, "graph": graph.to_data()}


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail before thinking if the trace could not be written afterwards."""
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write trace {target}: directory {folder} does not exist")
    if target.is_dir():
        raise UsageError(f"cannot write trace {target}: it is a directory")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write trace {target}: directory {folder} is not writable")
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str, *, what: str = "") -> Path:
    """Write ``text`` to a temporary file beside ``path``, fsync it, and rename it into
    place; ``what`` names the file in errors ("trace ")."""
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise TraceError(f"cannot write {what}{target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException as exc:
        # Whatever stopped the write (a full disk, Ctrl-C), the old file stays as it
        # was and no temporary file is left beside it.
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise TraceError(f"cannot write {what}{target}: {exc.strerror or exc}") from exc
        raise
    return target


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    # Serialized first: data JSON cannot hold fails before any file is touched.
    return write_text_atomic(path, json.dumps(data, ensure_ascii=False) + "\n", what="trace ")


def write_trace(path: str | os.PathLike[str], trace: dict[str, Any]) -> Path:
    return write_json_atomic(path, trace)


def read_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"trace file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace {source}: {exc}") from exc
    try:
        trace = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{source} is not valid JSON (line {exc.lineno}): not a deliberate trace") from exc
    if not readable(trace):
        found = trace.get("format") if isinstance(trace, dict) else None
        newer = re.fullmatch(r"deliberate-trace/(\d+)", found) if isinstance(found, str) else None
        if newer and int(newer.group(1)) > int(FORMAT.rsplit("/", 1)[1]):
            raise TraceError(f"{source} has the newer format {found!r}; this deliberate reads {FORMAT!r}: upgrade deliberate")
        raise TraceError(f"{source} is not a deliberate trace (expected format {FORMAT!r})")
    for part in ("meta", "events", "graph"):
        if part not in trace:
            raise TraceError(f"{source} is missing its {part!r} part")
    return trace


def load_graph(trace: dict[str, Any]) -> ThoughtGraph:
    try:
        return ThoughtGraph.from_data(trace["graph"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceError(f"the trace's graph cannot be read: {exc}") from exc


def answer_path(trace: dict[str, Any], graph: ThoughtGraph) -> list[int]:
    node = trace["meta"].get("answer_node")
    return graph.path(node) if isinstance(node, int) and node in graph.g else []
