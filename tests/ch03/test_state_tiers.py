"""Swapping a preempted sequence down the tiers and back, timed."""

from __future__ import annotations

import pytest

from ch03_gpu.paged_allocator import (
    OutOfBlocksError,
    PagedAllocator,
    UnknownSequenceError,
)
from ch03_gpu.state_tiers import (
    GIB,
    OutOfSwapSpaceError,
    SequenceSwappedOutError,
    SwapSpace,
    Tier,
    host_and_disk,
)

CPU = Tier("cpu", capacity_blocks=4, seconds_per_block=0.001)
DISK = Tier("disk", capacity_blocks=8, seconds_per_block=0.01)


def swap_space(num_blocks: int = 8) -> SwapSpace:
    return SwapSpace(PagedAllocator(num_blocks, block_tokens=4), [CPU, DISK])


def test_swap_out_frees_the_device_and_swap_in_restores_the_tokens() -> None:
    swap = swap_space()
    swap.allocator.allocate(1)
    swap.allocator.append(1, 10)  # three blocks
    assert swap.swap_out(1) == pytest.approx(3 * 0.001)
    assert 1 not in swap.allocator and 1 in swap
    assert swap.allocator.available_blocks == 8
    assert swap.swap_in(1) == pytest.approx(3 * 0.001)
    assert swap.allocator.num_tokens(1) == 10
    assert swap.transfer_seconds == pytest.approx(6 * 0.001)
    assert (swap.swap_outs, swap.swap_ins) == (1, 1)


def test_a_full_host_tier_spills_to_disk_through_the_host() -> None:
    swap = swap_space()
    for seq_id in (1, 2):
        swap.allocator.allocate(seq_id)
        swap.allocator.append(seq_id, 12)  # three blocks each
    swap.swap_out(1)
    # Four host blocks, one left: staged through host, then to disk.
    assert swap.swap_out(2) == pytest.approx(3 * (0.001 + 0.01))
    assert swap.swapped()[2].tier == 1


def test_no_room_in_any_tier_keeps_the_sequence_on_the_device() -> None:
    swap = SwapSpace(PagedAllocator(8, block_tokens=4), [CPU])
    swap.allocator.allocate(1)
    swap.allocator.append(1, 20)  # five blocks, four fit the host
    with pytest.raises(OutOfSwapSpaceError, match="recompute instead"):
        swap.swap_out(1)
    assert swap.allocator.num_tokens(1) == 20


def test_swap_in_waits_for_device_blocks() -> None:
    swap = swap_space(num_blocks=3)
    swap.allocator.allocate(1)
    swap.allocator.append(1, 12)
    swap.swap_out(1)
    swap.allocator.allocate(2, [0])
    with pytest.raises(OutOfBlocksError):
        swap.swap_in(1)
    assert 1 in swap and 1 not in swap.allocator


def test_swapping_what_is_not_there_is_refused() -> None:
    swap = swap_space()
    swap.allocator.allocate(1)
    swap.swap_out(1)  # an empty sequence: no blocks, no time
    with pytest.raises(SequenceSwappedOutError):
        swap.swap_out(1)
    with pytest.raises(UnknownSequenceError, match="not swapped out"):
        swap.swap_in(2)
    with pytest.raises(UnknownSequenceError, match="no such sequence"):
        swap.swap_out(2)
    swap.discard(1)
    with pytest.raises(UnknownSequenceError, match="not swapped out"):
        swap.discard(1)


def test_default_tiers_from_pcie_and_nvme_bandwidths() -> None:
    block_bytes = 2 * 2**20  # 16 bf16 tokens of Llama-3.1-8B
    cpu, disk = host_and_disk(block_bytes)
    assert cpu.capacity_blocks == 4 * GIB // block_bytes == 2048
    assert cpu.seconds_per_block == pytest.approx(32.8e-6, rel=1e-3)
    assert disk.seconds_per_block == pytest.approx(299.6e-6, rel=1e-3)
