"""The radix tree of cached token sequences, checked against a plain-dict model.

The model keeps each sequence id's tokens in a dict and answers every question by
brute force; a hypothesis state machine drives both with random acquire, insert,
release, remove, lookup and evict steps over a tiny token alphabet, so prefixes are
shared, split and removed all the time.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from deliberate.backends.prefix_cache import PrefixCache

N_SEQ = 6
token_lists = st.lists(st.integers(min_value=0, max_value=3), max_size=8)


def common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def is_prefix(short: list[int], long: list[int]) -> bool:
    return long[: len(short)] == short


class PrefixCacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cache = PrefixCache(N_SEQ)
        self.tokens: dict[int, list[int]] = {}  # seq -> the tokens it holds (never empty)
        self.pinned: set[int] = set()
        self.used: dict[int, int] = {}  # seq -> tick of last use, as the model sees it
        self.tick = 0

    # -- helpers ------------------------------------------------------------------
    def _touch(self, seq: int) -> None:
        self.tick += 1
        self.used[seq] = self.tick

    def _free(self) -> set[int]:
        return set(range(N_SEQ)) - self.pinned - set(self.tokens)

    # -- steps ----------------------------------------------------------------------
    @rule()
    def acquire(self) -> None:
        seq = self.cache.acquire()
        if not self._free():
            assert seq is None
            return
        assert seq in self._free()
        self.pinned.add(seq)

    @rule(seq=st.integers(min_value=0, max_value=N_SEQ - 1), tokens=token_lists)
    def insert(self, seq: int, tokens: list[int]) -> None:
        self.cache.insert(seq, tokens)
        self.tokens.pop(seq, None)
        self.used.pop(seq, None)
        if tokens:
            self.tokens[seq] = list(tokens)
            self._touch(seq)

    @precondition(lambda self: self.pinned)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.pinned)))
        self.cache.release(seq)
        self.pinned.discard(seq)

    @rule(seq=st.integers(min_value=0, max_value=N_SEQ - 1))
    def remove(self, seq: int) -> None:
        self.cache.remove(seq)
        self.tokens.pop(seq, None)
        self.used.pop(seq, None)

    @rule(query=token_lists)
    def longest_prefix(self, query: list[int]) -> None:
        seq, matched = self.cache.longest_prefix(query)
        best = max((common(tokens, query) for tokens in self.tokens.values()), default=0)
        assert matched == best
        if best == 0:
            assert seq is None
            return
        # The id returned really holds the matched tokens, so copying them is safe.
        assert seq in self.tokens
        assert self.tokens[seq][:matched] == query[:matched]
        self._touch(seq)

    @rule(query=token_lists)
    def lookup_of_a_stored_sequence_matches_it_whole(self, query: list[int]) -> None:
        if not self.tokens:
            return
        target = self.tokens[sorted(self.tokens)[len(query) % len(self.tokens)]]
        seq, matched = self.cache.longest_prefix(target + query)
        assert matched >= len(target)
        assert seq is not None and is_prefix(target, self.tokens[seq])
        self._touch(seq)

    @rule(for_cells=st.booleans(), evict=st.booleans())
    def lru_victim(self, for_cells: bool, evict: bool) -> None:
        victim = self.cache.lru_victim(for_cells=for_cells)
        cached = [seq for seq in self.tokens if seq not in self.pinned]

        def extended(seq: int) -> bool:  # another sequence strictly continues this one
            return any(o != seq and len(t) > len(self.tokens[seq]) and is_prefix(self.tokens[seq], t) for o, t in self.tokens.items())

        def duplicated(seq: int) -> bool:
            return any(o != seq and t == self.tokens[seq] for o, t in self.tokens.items())

        redundant = [seq for seq in cached if extended(seq) or duplicated(seq)]
        leaves = [seq for seq in cached if not extended(seq)]
        eligible = redundant if redundant and not for_cells else leaves
        if not eligible:
            assert victim is None
            return
        assert victim is not None
        assert victim not in self.pinned  # a running branch is never evicted
        if for_cells or not redundant:
            # Evicting for cells must free cells: never a prefix of a live sequence.
            assert not extended(victim)
        assert victim == min(eligible, key=self.used.__getitem__)  # least recently used
        if evict:
            cells_before = self.cache.cells
            self.cache.remove(victim)
            del self.tokens[victim]
            del self.used[victim]
            assert victim in self.cache.free
            if redundant and not for_cells:
                assert self.cache.cells == cells_before  # a redundant id holds no cells of its own

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def ids_are_free_pinned_or_cached_and_nothing_else(self) -> None:
        free = set(self.cache.free)
        assert len(free) == len(self.cache.free)  # no id handed out twice
        assert free == self._free()
        assert self.cache.pinned == self.pinned
        assert set(self.cache.cached) == set(self.tokens) - self.pinned

    @invariant()
    def lengths_and_cells_match_the_model(self) -> None:
        for seq in range(N_SEQ):
            assert self.cache.length(seq) == len(self.tokens.get(seq, []))
        # A shared prefix is stored once: cells = distinct non-empty prefixes.
        prefixes = {tuple(tokens[:n]) for tokens in self.tokens.values() for n in range(1, len(tokens) + 1)}
        assert self.cache.cells == len(prefixes)


PrefixCacheMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_prefix_cache_matches_model = PrefixCacheMachine.TestCase


def test_acquire_hands_out_lowest_ids_first_and_none_when_full():
    cache = PrefixCache(3)
    assert [cache.acquire(), cache.acquire(), cache.acquire()] == [0, 1, 2]
    assert cache.acquire() is None
    cache.release(1)
    assert cache.acquire() == 1


def test_release_keeps_tokens_cached_and_remove_frees_the_id():
    cache = PrefixCache(2)
    seq = cache.acquire()
    cache.insert(seq, [1, 2, 3])
    cache.release(seq)
    assert cache.cached == [seq] and seq not in cache.free
    assert cache.longest_prefix([1, 2, 9]) == (seq, 2)
    cache.remove(seq)
    assert cache.cached == [] and seq in cache.free and cache.cells == 0
    assert cache.longest_prefix([1, 2, 9]) == (None, 0)


def test_split_edges_share_cells():
    cache = PrefixCache(4)
    a, b = cache.acquire(), cache.acquire()
    cache.insert(a, [1, 2, 3, 4])
    cache.insert(b, [1, 2, 5])
    assert cache.cells == 5  # 1 2 shared, then 3 4 and 5
    assert cache.longest_prefix([1, 2, 5, 6]) == (b, 3)
    assert cache.longest_prefix([1, 2]) in ((a, 2), (b, 2))
    cache.remove(a)
    assert cache.cells == 3
    assert cache.longest_prefix([1, 2, 3]) == (b, 2)


def test_lru_victim_prefers_redundant_prefixes_for_ids_and_leaves_for_cells():
    cache = PrefixCache(4)
    short, long, other = cache.acquire(), cache.acquire(), cache.acquire()
    cache.insert(short, [1, 2])
    cache.insert(long, [1, 2, 3])
    cache.insert(other, [7, 8])
    for seq in (short, long, other):
        cache.release(seq)
    cache.longest_prefix([7, 8])  # "other" is now the most recently used
    assert cache.lru_victim() == short  # a prefix of "long": frees an id, costs nothing
    assert cache.lru_victim(for_cells=True) == long  # the least recently used leaf
    cache.pinned.add(long)  # a running branch
    assert cache.lru_victim(for_cells=True) == other


@pytest.mark.parametrize("n_seq", [1, 4])
def test_nothing_to_evict_when_everything_is_pinned(n_seq):
    cache = PrefixCache(n_seq)
    for i in range(n_seq):
        seq = cache.acquire()
        cache.insert(seq, [i, i + 1])
    assert cache.lru_victim() is None and cache.lru_victim(for_cells=True) is None
