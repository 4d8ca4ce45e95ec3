"""A paged allocator for per-sequence state: the PagedAttention idea.

Chapter 3, "PagedAttention: virtual memory for KV cache". State lives
in fixed-size blocks of `block_tokens` tokens taken from a free list;
each sequence has a block table, as a process has a page table, so its
blocks need not be contiguous and it grows one block at a time, when
the last is full. `fork` shares a parent's blocks with a child under
reference counts (parallel sampling, beam search, a shared prompt), and
a sequence that appends into a shared, partly filled last block first
copies it (copy-on-write). Prompts are looked up in a `PrefixCache` so
that a cached block-aligned prefix is reused rather than recomputed.
Blocks are ids and counters: this is a model of the bookkeeping, and
no data moves.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ch03_gpu.prefix_cache import PrefixCache, block_hashes

SeqId = int
# Freed ids remembered to tell a double free from an unknown id; bounded
# so that a long-running server does not remember every sequence.
RECENTLY_FREED = 4096


class AllocatorError(Exception):
    """A request the allocator cannot honour; nothing was changed."""


class UnknownSequenceError(AllocatorError, LookupError):
    def __init__(self, seq_id: SeqId, detail: str = "no such sequence"):
        super().__init__(f"sequence {seq_id}: {detail}")
        self.seq_id = seq_id


class SequenceFreedTwiceError(UnknownSequenceError):
    def __init__(self, seq_id: SeqId):
        super().__init__(seq_id, "already freed")


class SequenceExistsError(AllocatorError):
    def __init__(self, seq_id: SeqId):
        super().__init__(f"sequence {seq_id}: already allocated")
        self.seq_id = seq_id


class OutOfBlocksError(AllocatorError):
    def __init__(self, needed: int, available: int):
        super().__init__(
            f"need {needed} blocks, {available} available:"
            " free or preempt a sequence, then retry"
        )
        self.needed = needed
        self.available = available


@dataclass(slots=True)
class SequenceState:
    block_table: list[int] = field(default_factory=list)
    num_tokens: int = 0
    # Free slots in the last block that this sequence alone may write.
    # Zero when in doubt (after a fork): the slow path then re-checks.
    room: int = 0


class PagedAllocator:
    """Fixed-size blocks, per-sequence block tables, shared by refcount."""

    def __init__(self, num_blocks: int, block_tokens: int = 16) -> None:
        if num_blocks < 1 or block_tokens < 1:
            raise ValueError("num_blocks and block_tokens must be >= 1")
        self.num_blocks = num_blocks
        self.block_tokens = block_tokens
        # pop() hands out block 0 first, which makes traces readable.
        self._free = list(range(num_blocks - 1, -1, -1))
        self._refcount = [0] * num_blocks
        self._sequences: dict[SeqId, SequenceState] = {}
        self._recently_freed: OrderedDict[SeqId, None] = OrderedDict()
        self.prefix_cache = PrefixCache()
        self.copies_on_write = 0
        self.prefix_lookup_blocks = 0  # full prompt blocks looked up
        self.prefix_hit_blocks = 0  # ... and found cached

    @property
    def available_blocks(self) -> int:
        """Blocks a sequence can get: free ones and evictable cached ones."""
        return len(self._free) + len(self.prefix_cache)

    @property
    def used_blocks(self) -> int:
        """Blocks owned by at least one sequence."""
        return self.num_blocks - self.available_blocks

    def __contains__(self, seq_id: object) -> bool:
        return seq_id in self._sequences

    def sequence_ids(self) -> list[SeqId]:
        return list(self._sequences)

    def block_table(self, seq_id: SeqId) -> tuple[int, ...]:
        return tuple(self._state(seq_id).block_table)

    def num_tokens(self, seq_id: SeqId) -> int:
        return self._state(seq_id).num_tokens

    def refcount(self, block: int) -> int:
        return self._refcount[block]

    def free_block_ids(self) -> list[int]:
        return list(self._free)

    def allocate(
        self, seq_id: SeqId, prompt_tokens: Sequence[int] = ()
    ) -> int:
        """Start a sequence, holding its prompt; return blocks reused.

        Full blocks of the prompt whose prefix is cached are shared, not
        computed again; the rest of the prompt takes new blocks, and its
        full ones are cached for the next prompt with the same prefix.
        """
        if seq_id in self._sequences:
            raise SequenceExistsError(seq_id)
        hashes = block_hashes(prompt_tokens, self.block_tokens)
        reused = self._cached_prefix(hashes)
        reviving = sum(map(self.prefix_cache.is_evictable, reused))
        needed = math.ceil(len(prompt_tokens) / self.block_tokens)
        needed -= len(reused)
        if needed > self.available_blocks - reviving:
            raise OutOfBlocksError(needed, self.available_blocks - reviving)
        for block in reused:
            if self._refcount[block] == 0:
                self.prefix_cache.revive(block)
            self._refcount[block] += 1
        seq = SequenceState(
            list(reused), num_tokens=len(reused) * self.block_tokens
        )
        self._sequences[seq_id] = seq
        self._recently_freed.pop(seq_id, None)
        extra = len(prompt_tokens) - seq.num_tokens
        if extra:
            self.append(seq_id, extra)
        for index in range(len(reused), len(hashes)):
            self.prefix_cache.register(seq.block_table[index], hashes[index])
        self.prefix_lookup_blocks += len(hashes)
        self.prefix_hit_blocks += len(reused)
        return len(reused)

    # --8<-- [start:block_table_append]
    def append(self, seq_id: SeqId, n_tokens: int = 1) -> None:
        """Add `n_tokens` of state; take a block only when one is full."""
        seq = self._sequences.get(seq_id)
        if seq is None:
            raise self._unknown(seq_id)
        if 0 < n_tokens <= seq.room:  # hot path: room in a private block
            seq.room -= n_tokens
            seq.num_tokens += n_tokens
            return
        if n_tokens < 1:
            raise ValueError(f"append {n_tokens} tokens: need at least 1")
        table, size = seq.block_table, self.block_tokens
        used = seq.num_tokens % size  # > 0: the last block is partly full
        shared = used > 0 and self._refcount[table[-1]] > 1
        spill = n_tokens - (size - used if used else 0)
        new_blocks = math.ceil(max(spill, 0) / size)
        self._ensure_available(new_blocks + shared)
        if shared:
            # Other sequences read this block: write into a private copy.
            self._refcount[table[-1]] -= 1
            table[-1] = self._take_block()
            self.copies_on_write += 1
        for _ in range(new_blocks):
            table.append(self._take_block())
        seq.num_tokens += n_tokens
        seq.room = len(table) * size - seq.num_tokens
    # --8<-- [end:block_table_append]

    def fork(self, parent: SeqId, child: SeqId) -> None:
        """Start `child` as a copy of `parent` that shares its blocks."""
        source = self._state(parent)
        if child in self._sequences:
            raise SequenceExistsError(child)
        for block in source.block_table:
            self._refcount[block] += 1
        self._sequences[child] = SequenceState(
            list(source.block_table), source.num_tokens
        )
        self._recently_freed.pop(child, None)
        # The last block is shared now: the next write must copy it.
        source.room = 0

    def free(self, seq_id: SeqId) -> list[int]:
        """End a sequence; return the blocks no sequence owns any more.

        Those blocks go back to the free list, or, if the prefix cache
        knows them, stay cached until evicted.
        """
        seq = self._sequences.pop(seq_id, None)
        if seq is None:
            if seq_id in self._recently_freed:
                raise SequenceFreedTwiceError(seq_id)
            raise UnknownSequenceError(seq_id)
        released = []
        # Last block first, so that a prefix's tail is evicted before its
        # head, which more prompts share.
        for block in reversed(seq.block_table):
            self._refcount[block] -= 1
            if self._refcount[block] == 0:
                released.append(block)
                if not self.prefix_cache.park(block):
                    self._free.append(block)
        self._recently_freed[seq_id] = None
        if len(self._recently_freed) > RECENTLY_FREED:
            self._recently_freed.popitem(last=False)
        return released

    def _state(self, seq_id: SeqId) -> SequenceState:
        seq = self._sequences.get(seq_id)
        if seq is None:
            raise self._unknown(seq_id)
        return seq

    def _unknown(self, seq_id: SeqId) -> UnknownSequenceError:
        if seq_id in self._recently_freed:
            return UnknownSequenceError(seq_id, "freed")
        return UnknownSequenceError(seq_id)

    def _cached_prefix(self, hashes: list[int]) -> list[int]:
        blocks = []
        for prefix_hash in hashes:
            block = self.prefix_cache.lookup(prefix_hash)
            if block is None:
                break
            blocks.append(block)
        return blocks

    def _ensure_available(self, needed: int) -> None:
        if needed > self.available_blocks:
            raise OutOfBlocksError(needed, self.available_blocks)

    def _take_block(self) -> int:
        if self._free:
            block = self._free.pop()
        else:
            # Only a cached block no sequence owns: its state is lost and
            # the next prompt with that prefix computes it again.
            evicted = self.prefix_cache.evict()
            if evicted is None:
                raise OutOfBlocksError(1, 0)
            block = evicted
        self._refcount[block] = 1
        return block
