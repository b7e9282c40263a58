"""The server's memory of searches: the last N traces, live ones included.

Each search has an ``Entry``: its event log and its reasoning lines, each a ``Feed``
that the search thread appends to and any number of streams follow, and at the end
its whole trace. The store keeps the newest ``keep`` entries; a running search is
never dropped.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from deliberate.viewer.html import embed_json


class Feed:
    """An append-only list that one thread writes and async readers follow.

    Like the live view, a change replaces the loop's ``asyncio.Event`` (set from the
    loop thread via ``call_soon_threadsafe``), so no reader can miss a wake-up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._items: list[Any] = []
        self._closed = False
        self._lock = threading.Lock()
        self._loop = loop
        self._changed = asyncio.Event()

    def push(self, item: Any) -> None:
        """Append ``item``; safe from any thread."""
        with self._lock:
            if self._closed:
                return
            self._items.append(item)
        self._wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self._items)

    async def follow(self, start: int = 0) -> AsyncIterator[Any]:
        """Every item from ``start`` on, waiting for new ones until the feed closes."""
        sent = start
        while True:
            changed = self._changed  # taken before reading, so a later change still wakes us
            with self._lock:
                fresh, closed = self._items[sent:], self._closed
            for item in fresh:
                yield item
            sent += len(fresh)
            if closed:
                return
            await changed.wait()

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._renew)
        except RuntimeError:  # the loop stopped in between: nobody is listening
            pass

    def _renew(self) -> None:  # in the loop's thread
        old, self._changed = self._changed, asyncio.Event()
        old.set()


class Entry:
    """One search the server runs or ran."""

    def __init__(self, question: str, loop: asyncio.AbstractEventLoop | None) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.question = question
        self.created = time.time()
        self.events = Feed(loop)  # each search event as JSON text
        self.lines = Feed(loop)  # reasoning lines, one per new thought
        self.status = "running"  # then "done" or "failed"
        self.trace: dict[str, Any] | None = None
        self.trace_json = ""  # the trace as JSON safe inside a page
        self.summary: dict[str, Any] = {}

    def finish(self, trace: dict[str, Any] | None, summary: dict[str, Any]) -> None:
        """Record the outcome (``trace`` is None if the search failed) and close the feeds."""
        self.trace = trace
        self.trace_json = embed_json(trace) if trace is not None else ""
        self.summary = summary
        self.status = "done" if trace is not None else "failed"
        self.lines.close()
        self.events.close()

    async def event_stream(self) -> AsyncIterator[dict[str, str]]:
        """SSE messages: every event so far and each new one ("event"), then the whole
        trace ("trace"). The live viewer page reads this same stream."""
        async for data in self.events.follow():
            yield {"event": "event", "data": data}
        if self.trace_json:
            yield {"event": "trace", "data": self.trace_json}


class TraceStore:
    """The newest ``keep`` entries, by id, oldest first."""

    def __init__(self, keep: int = 100) -> None:
        self.keep = keep
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.id] = entry
            finished = [key for key, e in self._entries.items() if e.status != "running"]
            while len(self._entries) > self.keep and finished:
                del self._entries[finished.pop(0)]

    def get(self, trace_id: str) -> Entry | None:
        with self._lock:
            return self._entries.get(trace_id)

    def recent(self) -> list[Entry]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._entries.values()))
