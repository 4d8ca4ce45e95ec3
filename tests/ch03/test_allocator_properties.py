"""Random operation sequences never lose a block or own one twice."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ch03_gpu.paged_allocator import (
    OutOfBlocksError,
    PagedAllocator,
    SequenceExistsError,
    SequenceFreedTwiceError,
    UnknownSequenceError,
)
from ch03_gpu.state_tiers import (
    OutOfSwapSpaceError,
    SequenceSwappedOutError,
    SwapSpace,
    Tier,
)

BLOCKS, BLOCK_TOKENS = 16, 4
# Few ids and a three-token alphabet, so that ids collide (errors) and
# prompts share prefixes (cache hits) often.
seq_ids = st.integers(0, 4)
prompts = st.lists(st.integers(0, 2), max_size=14)


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.allocator = PagedAllocator(BLOCKS, BLOCK_TOKENS)
        self.swap = SwapSpace(
            self.allocator,
            [Tier("cpu", 6, 1e-5), Tier("disk", 10, 1e-4)],
        )
        self.tokens: dict[int, int] = {}  # on the device
        self.swapped_tokens: dict[int, int] = {}

    def unchanged(self, seq_id: int) -> None:
        if seq_id in self.tokens:
            assert self.allocator.num_tokens(seq_id) == self.tokens[seq_id]

    @rule(seq_id=seq_ids, prompt=prompts)
    def allocate(self, seq_id: int, prompt: list[int]) -> None:
        try:
            self.allocator.allocate(seq_id, prompt)
        except SequenceExistsError:
            assert seq_id in self.tokens
            return
        except OutOfBlocksError:
            assert seq_id not in self.allocator
            return
        assert seq_id not in self.tokens
        self.tokens[seq_id] = len(prompt)

    @rule(seq_id=seq_ids, n_tokens=st.integers(1, 6))
    def append(self, seq_id: int, n_tokens: int) -> None:
        before = self.allocator.block_table(seq_id) if (
            seq_id in self.tokens
        ) else None
        try:
            self.allocator.append(seq_id, n_tokens)
        except UnknownSequenceError:
            assert seq_id not in self.tokens
            return
        except OutOfBlocksError:
            assert self.allocator.block_table(seq_id) == before
            self.unchanged(seq_id)
            return
        self.tokens[seq_id] += n_tokens
        table = self.allocator.block_table(seq_id)
        if self.tokens[seq_id] % BLOCK_TOKENS:
            # The block just written is this sequence's alone.
            assert self.allocator.refcount(table[-1]) == 1

    @rule(parent=seq_ids, child=seq_ids)
    def fork(self, parent: int, child: int) -> None:
        try:
            self.allocator.fork(parent, child)
        except UnknownSequenceError:
            assert parent not in self.tokens
            return
        except SequenceExistsError:
            assert child in self.tokens
            return
        self.tokens[child] = self.tokens[parent]

    @rule(seq_id=seq_ids)
    def free(self, seq_id: int) -> None:
        try:
            released = self.allocator.free(seq_id)
        except SequenceFreedTwiceError:
            assert seq_id not in self.tokens
            return
        except UnknownSequenceError:
            assert seq_id not in self.tokens
            return
        del self.tokens[seq_id]
        assert all(self.allocator.refcount(b) == 0 for b in released)

    @rule(seq_id=seq_ids)
    def swap_out(self, seq_id: int) -> None:
        try:
            seconds = self.swap.swap_out(seq_id)
        except SequenceSwappedOutError:
            assert seq_id in self.swapped_tokens
            return
        except UnknownSequenceError:
            assert seq_id not in self.tokens
            return
        except OutOfSwapSpaceError:
            self.unchanged(seq_id)
            return
        blocks = math.ceil(self.tokens[seq_id] / BLOCK_TOKENS)
        assert seconds >= blocks * 1e-5
        self.swapped_tokens[seq_id] = self.tokens.pop(seq_id)

    @rule(seq_id=seq_ids)
    def swap_in(self, seq_id: int) -> None:
        try:
            self.swap.swap_in(seq_id)
        except UnknownSequenceError:
            assert seq_id not in self.swapped_tokens
            return
        except SequenceExistsError:
            assert seq_id in self.tokens
            return
        except OutOfBlocksError:
            assert seq_id in self.swapped_tokens
            return
        self.tokens[seq_id] = self.swapped_tokens.pop(seq_id)

    @rule(seq_id=seq_ids)
    def discard(self, seq_id: int) -> None:
        try:
            self.swap.discard(seq_id)
        except UnknownSequenceError:
            assert seq_id not in self.swapped_tokens
            return
        del self.swapped_tokens[seq_id]

    @invariant()
    def every_block_free_cached_or_owned_by_its_tables(self) -> None:
        allocator = self.allocator
        references = Counter(
            block for seq_id in allocator.sequence_ids()
            for block in allocator.block_table(seq_id)
        )
        free = allocator.free_block_ids()
        evictable = allocator.prefix_cache.evictable_blocks()
        owned = [b for b in range(BLOCKS) if allocator.refcount(b) > 0]
        assert len(set(free)) == len(free)
        assert set(free).isdisjoint(evictable)
        assert set(free).isdisjoint(owned)
        assert set(evictable).isdisjoint(owned)
        assert len(free) + len(evictable) + len(owned) == BLOCKS
        assert all(
            allocator.refcount(b) == references[b] for b in range(BLOCKS)
        )
        # A cached block holds a prefix's state: never on the free list.
        assert set(allocator.prefix_cache.cached_blocks()).isdisjoint(free)

    @invariant()
    def sequences_hold_their_tokens(self) -> None:
        assert sorted(self.allocator.sequence_ids()) == sorted(self.tokens)
        for seq_id, tokens in self.tokens.items():
            assert self.allocator.num_tokens(seq_id) == tokens
            table = self.allocator.block_table(seq_id)
            assert len(table) == math.ceil(tokens / BLOCK_TOKENS)

    @invariant()
    def sharers_of_a_partial_block_hold_the_same_tokens(self) -> None:
        fills: dict[int, set[int]] = {}
        for seq_id, tokens in self.tokens.items():
            if tokens % BLOCK_TOKENS:
                last = self.allocator.block_table(seq_id)[-1]
                fills.setdefault(last, set()).add(tokens)
        assert all(len(counts) == 1 for counts in fills.values())

    @invariant()
    def host_blocks_free_or_held_once(self) -> None:
        swapped = self.swap.swapped()
        assert sorted(swapped) == sorted(self.swapped_tokens)
        for index, tier in enumerate(self.swap.tiers):
            held = [
                b for s in swapped.values() if s.tier == index
                for b in s.blocks
            ]
            free = self.swap.free_block_ids(index)
            assert sorted(held + free) == list(range(tier.capacity_blocks))


AllocatorMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, derandomize=True,
    database=None, deadline=None,
)
TestAllocatorOperations = AllocatorMachine.TestCase
