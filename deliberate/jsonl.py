"""JSON Lines, read by one rule wherever deliberate reads them: datasets, bench
results, and a bench run that resumes.

- Blank lines are skipped.
- Every other line is one JSON object. A line that is not is an error that names the
  file and the line: ``r.jsonl line 2: not valid JSON``.
- The one exception is the last line when no newline follows it: a writer cut off
  there (Ctrl-C, a full disk) leaves half a record. ``read_jsonl`` returns such a
  line as ``torn`` instead of failing, and the caller says what it means: results
  reports leave it out, a resumed bench cuts it off the file, and a dataset, which
  nothing of ours writes, refuses it (``Lines.refuse_torn``).

A whole last line is kept whether or not a newline follows it.

Writing is append-only (``Appender``): each record is one whole line, flushed and
fsynced before the next, so a cut-off writer leaves at most one torn last line, which
``resume_jsonl`` cuts off before appending again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deliberate.errors import DatasetError

log = logging.getLogger("deliberate.jsonl")


@dataclass
class Lines:
    path: Path
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (1-based line number, object)
    torn: int | None = None  # the byte offset where a half-written last line begins
    torn_line: int | None = None  # and its line number

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [row for _, row in self.rows]

    def refuse_torn(self) -> Lines:
        """These lines, or the error a half-written last line is where none may be."""
        if self.torn is not None:
            raise DatasetError(f"{self.path.name} line {self.torn_line}: not valid JSON")
        return self


def read_jsonl(path: str | Path, *, what: str = "file") -> Lines:
    """Every object in ``path`` by the rule above; ``what`` names the file in errors."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    lines = Lines(path)
    pieces = data.split(b"\n")
    offset = 0
    for number, raw in enumerate(pieces, 1):
        if raw.strip():
            try:
                row = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                if number == len(pieces):  # no newline after it: a write cut off
                    lines.torn, lines.torn_line = offset, number
                    break
                raise DatasetError(f"{path.name} line {number}: not valid JSON") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path.name} line {number}: not a JSON object")
            lines.rows.append((number, row))
        offset += len(raw) + 1
    return lines


def resume_jsonl(path: Path, *, what: str = "file") -> list[dict[str, Any]]:
    """The whole records in ``path`` (none if it does not exist yet), after cutting off
    a half-written last line so that appending can go on.

    Only the last line can be half-written (``Appender`` writes whole lines and fsyncs
    each), so a bad line anywhere else is an error rather than something to delete.
    """
    if not path.exists():
        return []
    lines = read_jsonl(path, what=what)
    if lines.torn is not None:
        log.warning("%s line %d: cutting off a half-written record", path.name, lines.torn_line)
        with path.open("r+b") as handle:
            handle.truncate(lines.torn)
            os.fsync(handle.fileno())
    return lines.objects


class Appender:
    """Appends whole records to a JSON Lines file, each flushed and fsynced before the
    next; ``write`` may be called from several threads."""

    def __init__(self, path: Path, *, what: str = "file") -> None:
        self.path = path
        self.what = what
        self.lock = threading.Lock()  # held by callers that write from several threads
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = path.open("ab", buffering=0)
            # A last record without its newline (written by hand, say) must not run into ours.
            if self.handle.tell() > 0 and not path.read_bytes().endswith(b"\n"):
                self._put(b"\n")
        except OSError as exc:
            raise DatasetError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._put((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as exc:
            raise DatasetError(f"cannot write {self.what} {self.path}: {exc.strerror or exc}") from exc

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.handle.write(view) :]
        os.fsync(self.handle.fileno())

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.close()
