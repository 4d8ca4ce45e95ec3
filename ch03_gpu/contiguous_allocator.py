"""Contiguous allocation of state, first fit: what paging replaced.

Chapter 3, "PagedAttention: virtual memory for KV cache". Before vLLM,
a server gave each sequence one contiguous extent of state memory,
reserved up front: the context window's full length, or (with an
oracle) exactly its final length. In one address space, first fit,
extents of different sizes come and go and leave holes between them;
a free slot in a hole too small for the next request is external
fragmentation, which paging removes by making every block alike.
"""

from __future__ import annotations

import bisect

from ch03_gpu.paged_allocator import (
    OutOfBlocksError,
    SeqId,
    SequenceExistsError,
    SequenceFreedTwiceError,
    UnknownSequenceError,
)


class ContiguousArena:
    """`capacity` token slots; each sequence one extent, first fit."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1 token")
        self.capacity = capacity
        # Free extents as (start, size), sorted by start, never adjacent.
        self._holes: list[tuple[int, int]] = [(0, capacity)]
        self._extents: dict[SeqId, tuple[int, int]] = {}
        self._released: set[SeqId] = set()
        self.free_tokens = capacity

    @property
    def held_tokens(self) -> int:
        return self.capacity - self.free_tokens

    def holes(self) -> list[tuple[int, int]]:
        return list(self._holes)

    def extent(self, seq_id: SeqId) -> tuple[int, int]:
        """Where `seq_id`'s slots start, and how many it holds."""
        extent = self._extents.get(seq_id)
        if extent is None:
            raise UnknownSequenceError(seq_id)
        return extent

    def largest_hole(self) -> int:
        return max((size for _, size in self._holes), default=0)

    def reserve(self, seq_id: SeqId, size: int) -> int:
        """Give `seq_id` the first hole of `size` slots; return its start."""
        if seq_id in self._extents:
            raise SequenceExistsError(seq_id)
        if size < 1:
            raise ValueError(f"reserve {size} tokens: need at least 1")
        index = next(
            (i for i, (_, hole) in enumerate(self._holes) if hole >= size),
            None,
        )
        if index is None:
            raise OutOfBlocksError(size, self.largest_hole())
        start, hole = self._holes[index]
        if hole == size:
            del self._holes[index]
        else:
            self._holes[index] = (start + size, hole - size)
        self._extents[seq_id] = (start, size)
        self._released.discard(seq_id)
        self.free_tokens -= size
        return start

    def release(self, seq_id: SeqId) -> None:
        extent = self._extents.pop(seq_id, None)
        if extent is None:
            if seq_id in self._released:
                raise SequenceFreedTwiceError(seq_id)
            raise UnknownSequenceError(seq_id)
        self._released.add(seq_id)
        start, size = extent
        self.free_tokens += size
        index = bisect.bisect(self._holes, extent)
        # Merge with the hole after, then the hole before, if adjacent.
        if index < len(self._holes) and (
            self._holes[index][0] == start + size
        ):
            size += self._holes.pop(index)[1]
        if index > 0 and sum(self._holes[index - 1]) == start:
            before, gap = self._holes[index - 1]
            self._holes[index - 1] = (before, gap + size)
        else:
            self._holes.insert(index, (start, size))
