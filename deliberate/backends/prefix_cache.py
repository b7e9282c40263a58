"""A radix tree over the token sequences held in the KV cache, one sequence id each.

llama.cpp keeps every sequence's keys and values in one unified cache, and
``seq_cp`` lets a new sequence share the cells of an old one's prefix for free. This
tree answers "which cached sequence shares the longest prefix with these tokens?"
in time proportional to the prompt, and picks what to evict when ids or cells run
short: the least recently used sequence that no running branch holds.

The tree only does bookkeeping; the backend performs the matching llama.cpp calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence


class _Node:
    __slots__ = ("edge", "children", "ends", "parent")

    def __init__(self, edge: tuple[int, ...], parent: _Node | None) -> None:
        self.edge = edge  # tokens on the edge from the parent to this node
        self.children: dict[int, _Node] = {}  # keyed by the first token of the child's edge
        self.ends: set[int] = set()  # sequence ids whose tokens end exactly here
        self.parent = parent


class PrefixCache:
    """Sequence ids are ``free``, ``cached`` (in the tree, evictable) or ``pinned`` (in use).

    A pinned id is also in the tree once it holds tokens, but it is never evicted.
    """

    def __init__(self, n_seq: int) -> None:
        self.root = _Node((), None)
        self.free: list[int] = list(range(n_seq - 1, -1, -1))  # pop() hands out 0 first
        self.pinned: set[int] = set()
        self._end: dict[int, _Node] = {}  # seq id -> node where its tokens end
        self._length: dict[int, int] = {}
        self._used: dict[int, int] = {}  # seq id -> last-use tick, for LRU
        self._tick = itertools.count()
        self.cells = 0  # tokens stored in the tree; shared prefixes count once

    # -- ids -------------------------------------------------------------------
    def acquire(self) -> int | None:
        """A free id, pinned; None if none is free (evict first)."""
        if not self.free:
            return None
        seq = self.free.pop()
        self.pinned.add(seq)
        return seq

    def release(self, seq: int) -> None:
        """Unpin: the id stays cached if it holds tokens, else it becomes free."""
        self.pinned.discard(seq)
        if seq not in self._end and seq not in self.free:
            self.free.append(seq)

    @property
    def cached(self) -> list[int]:
        return [seq for seq in self._end if seq not in self.pinned]

    def length(self, seq: int) -> int:
        return self._length.get(seq, 0)

    # -- lookups ---------------------------------------------------------------
    def longest_prefix(self, tokens: Sequence[int]) -> tuple[int | None, int]:
        """(a sequence id sharing the longest prefix with ``tokens``, that prefix's length)."""
        node, matched = self.root, 0
        while matched < len(tokens):
            child = node.children.get(tokens[matched])
            if child is None:
                break
            common = _common(child.edge, tokens, matched)
            matched += common
            node = child
            if common < len(child.edge):
                break
        if matched == 0:
            return None, 0
        seq = self._any_seq_below(node)
        self._touch(seq)
        return seq, matched

    def _any_seq_below(self, node: _Node) -> int:
        while not node.ends:
            node = next(iter(node.children.values()))  # every leaf ends a sequence
        return min(node.ends)

    # -- updates ---------------------------------------------------------------
    def insert(self, seq: int, tokens: Sequence[int]) -> None:
        """Record that ``seq`` now holds exactly ``tokens`` (replacing what it held)."""
        if seq in self._end:
            self.remove(seq)
        if not tokens:
            return
        node, i = self.root, 0
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                leaf = _Node(tuple(tokens[i:]), node)
                node.children[tokens[i]] = leaf
                self.cells += len(leaf.edge)
                node, i = leaf, len(tokens)
                break
            common = _common(child.edge, tokens, i)
            if common < len(child.edge):
                child = self._split(child, common)
            node, i = child, i + common
        node.ends.add(seq)
        self._end[seq] = node
        self._length[seq] = len(tokens)
        if seq in self.free:
            self.free.remove(seq)
        self._touch(seq)

    def _split(self, child: _Node, at: int) -> _Node:
        parent = child.parent
        assert parent is not None
        middle = _Node(child.edge[:at], parent)
        parent.children[child.edge[0]] = middle
        child.edge = child.edge[at:]
        child.parent = middle
        middle.children[child.edge[0]] = child
        return middle

    def remove(self, seq: int) -> None:
        """Forget ``seq``'s tokens; a pinned id stays pinned, an unpinned one becomes free."""
        node = self._end.pop(seq, None)
        self._length.pop(seq, None)
        self._used.pop(seq, None)
        if node is not None:
            node.ends.discard(seq)
            while node.parent is not None and not node.ends and not node.children:
                del node.parent.children[node.edge[0]]
                self.cells -= len(node.edge)
                node = node.parent
        if seq not in self.pinned and seq not in self.free:
            self.free.append(seq)

    def lru_victim(self, *, for_cells: bool = False) -> int | None:
        """The cached (unpinned) sequence to evict next, or None.

        A sequence whose tokens are a prefix of another sequence's is redundant: the
        longer one serves every lookup it could, and removing it frees an id but no
        cells. Those go first when an id is needed. Otherwise, and always when cells
        are needed, the least recently used leaf goes; removing it frees the cells
        only it holds. A leaf is never an ancestor of a running branch.
        """
        candidates = [seq for seq, node in self._end.items() if seq not in self.pinned]
        redundant = [seq for seq in candidates if self._end[seq].children or len(self._end[seq].ends) > 1]
        if not for_cells and redundant:
            return min(redundant, key=self._used.__getitem__)
        leaves = [seq for seq in candidates if not self._end[seq].children]
        return min(leaves, key=self._used.__getitem__, default=None)

    def _touch(self, seq: int) -> None:
        self._used[seq] = next(self._tick)


def _common(edge: tuple[int, ...], tokens: Sequence[int], start: int) -> int:
    n = min(len(edge), len(tokens) - start)
    for i in range(n):
        if edge[i] != tokens[start + i]:
            return i
    return n
