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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deliberate.errors import DatasetError


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
