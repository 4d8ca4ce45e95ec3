"""The paged allocator: growth, sharing, copy-on-write, prefix reuse."""

from __future__ import annotations

import pytest

from ch03_gpu.paged_allocator import (
    RECENTLY_FREED,
    OutOfBlocksError,
    PagedAllocator,
    SequenceExistsError,
    SequenceFreedTwiceError,
    UnknownSequenceError,
)


def test_a_new_block_only_when_the_last_is_full() -> None:
    allocator = PagedAllocator(num_blocks=4, block_tokens=4)
    allocator.allocate(1)
    for _ in range(4):
        allocator.append(1)
    assert allocator.block_table(1) == (0,)  # 4 tokens: one full block
    allocator.append(1)
    assert allocator.block_table(1) == (0, 1)
    allocator.append(1, 6)  # 11 tokens: three blocks
    assert allocator.block_table(1) == (0, 1, 2)
    assert allocator.num_tokens(1) == 11


def test_fork_shares_blocks_and_copies_the_partial_one_on_write() -> None:
    allocator = PagedAllocator(num_blocks=8, block_tokens=4)
    allocator.allocate(1, [7, 7, 7, 7, 8, 8])  # a full block and a half
    allocator.fork(1, 2)
    assert allocator.block_table(2) == allocator.block_table(1) == (0, 1)
    assert allocator.refcount(0) == allocator.refcount(1) == 2
    allocator.append(2)  # into the shared half block: copy it first
    assert allocator.block_table(2) == (0, 2)
    assert allocator.refcount(1) == 1 and allocator.copies_on_write == 1
    allocator.append(1)  # the parent's half block is its own again
    assert allocator.block_table(1) == (0, 1)
    assert allocator.copies_on_write == 1


def test_a_full_shared_block_is_never_copied() -> None:
    allocator = PagedAllocator(num_blocks=8, block_tokens=4)
    allocator.allocate(1, [1, 2, 3, 4])
    allocator.fork(1, 2)
    allocator.append(2)
    assert allocator.block_table(2) == (0, 1)
    assert allocator.copies_on_write == 0


def test_free_returns_the_blocks_no_one_else_owns() -> None:
    allocator = PagedAllocator(num_blocks=8, block_tokens=4)
    allocator.allocate(1)
    allocator.append(1, 6)
    allocator.fork(1, 2)
    allocator.append(2, 2)  # copies block 1 into block 2, fills it
    assert allocator.free(2) == [2]
    assert sorted(allocator.free(1)) == [0, 1]
    assert allocator.available_blocks == 8


def test_freeing_twice_and_freeing_an_unknown_sequence_differ() -> None:
    allocator = PagedAllocator(num_blocks=2)
    allocator.allocate(1)
    allocator.free(1)
    with pytest.raises(SequenceFreedTwiceError, match="sequence 1: already"):
        allocator.free(1)
    with pytest.raises(UnknownSequenceError, match="sequence 9: no such"):
        allocator.free(9)


def test_a_double_free_long_ago_is_reported_as_unknown() -> None:
    allocator = PagedAllocator(num_blocks=2)
    for seq_id in range(RECENTLY_FREED + 1):
        allocator.allocate(seq_id)
        allocator.free(seq_id)
    with pytest.raises(UnknownSequenceError) as raised:
        allocator.free(0)
    assert type(raised.value) is UnknownSequenceError


def test_appending_to_an_unknown_or_freed_sequence_fails() -> None:
    allocator = PagedAllocator(num_blocks=2)
    with pytest.raises(UnknownSequenceError, match="no such sequence"):
        allocator.append(3)
    allocator.allocate(3)
    allocator.free(3)
    with pytest.raises(UnknownSequenceError, match="sequence 3: freed"):
        allocator.append(3)
    with pytest.raises(UnknownSequenceError):
        allocator.fork(3, 4)


def test_an_id_in_use_is_refused() -> None:
    allocator = PagedAllocator(num_blocks=2)
    allocator.allocate(1)
    allocator.allocate(2)
    with pytest.raises(SequenceExistsError, match="sequence 1: already"):
        allocator.allocate(1)
    with pytest.raises(SequenceExistsError):
        allocator.fork(1, 2)


def test_appending_nothing_is_an_error() -> None:
    allocator = PagedAllocator(num_blocks=2)
    allocator.allocate(1)
    with pytest.raises(ValueError, match="need at least 1"):
        allocator.append(1, 0)


def test_out_of_blocks_changes_nothing() -> None:
    allocator = PagedAllocator(num_blocks=2, block_tokens=4)
    allocator.allocate(1)
    allocator.append(1, 5)
    with pytest.raises(OutOfBlocksError, match="need 1 blocks, 0 available"):
        allocator.append(1, 4)  # 9 tokens would take a third block
    assert allocator.num_tokens(1) == 5
    assert allocator.block_table(1) == (0, 1)
    with pytest.raises(OutOfBlocksError):
        allocator.allocate(2, [1])
    assert 2 not in allocator


def test_a_shared_partial_block_needs_a_block_to_copy_into() -> None:
    allocator = PagedAllocator(num_blocks=1, block_tokens=4)
    allocator.allocate(1, [1, 2])
    allocator.fork(1, 2)
    with pytest.raises(OutOfBlocksError):
        allocator.append(2)
    assert allocator.num_tokens(2) == 2


def test_a_cached_prefix_is_reused_block_by_block() -> None:
    allocator = PagedAllocator(num_blocks=8, block_tokens=4)
    system = [9, 9, 9, 9, 8, 8, 8, 8]
    assert allocator.allocate(1, [*system, 1, 2]) == 0
    assert allocator.allocate(2, [*system, 3]) == 2  # both full blocks
    assert allocator.block_table(2)[:2] == allocator.block_table(1)[:2]
    # Same second block, different first: the chained hash tells them
    # apart.
    assert allocator.allocate(3, [0, 0, 0, 0, 8, 8, 8, 8]) == 0
    assert allocator.prefix_hit_blocks == 2
    assert allocator.prefix_lookup_blocks == 6


def test_unused_cached_blocks_wait_and_are_evicted_oldest_first() -> None:
    allocator = PagedAllocator(num_blocks=4, block_tokens=2)
    allocator.allocate(1, [1, 1, 2, 2])
    assert sorted(allocator.free(1)) == [0, 1]
    assert allocator.prefix_cache.evictable_blocks() == [1, 0]  # tail first
    assert allocator.available_blocks == 4
    assert allocator.allocate(2, [1, 1, 2, 2]) == 2  # revived, not new
    allocator.free(2)
    allocator.allocate(3, [5, 5, 6, 6, 7, 7])  # needs one cached block
    assert allocator.prefix_cache.evictable_blocks() == [0]
    allocator.free(3)
    assert allocator.allocate(4, [1, 1, 2, 2]) == 1  # the head survived
