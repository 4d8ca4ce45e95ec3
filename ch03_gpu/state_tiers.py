"""Swapping state down a GPU -> CPU -> disk hierarchy, and back.

Chapter 3, "KV cache offloading: GPU -> CPU -> NVMe hierarchy". When
device blocks run out, the scheduler preempts a sequence; rather than
recompute its state later, vLLM's swap preemption copies its blocks to
host memory and back when it resumes. Here each tier below the device
has a capacity in blocks and a cost per block for the link above it; a
swapped sequence goes whole to the first tier with room, staged through
the tiers above it, and every transfer is timed and accumulated. Block
ids and counters move, no data does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ch03_gpu.paged_allocator import (
    AllocatorError,
    OutOfBlocksError,
    PagedAllocator,
    SeqId,
    UnknownSequenceError,
)

GB = 10**9
GIB = 2**30
# PCIe 5.0 x16: 32 GT/s per lane, 16 lanes, 128b/130b encoding, about
# 63 GB/s each way (PCI-SIG, PCI Express Base Specification 5.0); H200
# boards sit on PCIe Gen5 x16 (NVIDIA H200 product page).
PCIE_GEN5_X16_BYTES_PER_S = 64 * GB
# A PCIe 4.0 x4 NVMe SSD: about 7 GB/s sequential (Samsung 990 PRO
# datasheet: 7,450 MB/s read, 6,900 MB/s write).
NVME_BYTES_PER_S = 7 * GB
# vLLM's --swap-space: CPU swap space per GPU, 4 GiB by default.
VLLM_SWAP_SPACE_BYTES = 4 * GIB


@dataclass(frozen=True)
class Tier:
    """A memory below the device, and the link that reaches it."""

    name: str
    capacity_blocks: int
    seconds_per_block: float  # to or from the tier above


def tier(
    name: str, capacity_bytes: float, block_bytes: float,
    link_bytes_per_s: float,
) -> Tier:
    return Tier(
        name, int(capacity_bytes // block_bytes),
        block_bytes / link_bytes_per_s,
    )


def host_and_disk(
    block_bytes: float, disk_bytes: float = 1000 * GB
) -> tuple[Tier, Tier]:
    """vLLM's default host swap space, then a local NVMe drive."""
    return (
        tier("cpu", VLLM_SWAP_SPACE_BYTES, block_bytes,
             PCIE_GEN5_X16_BYTES_PER_S),
        tier("disk", disk_bytes, block_bytes, NVME_BYTES_PER_S),
    )


class OutOfSwapSpaceError(AllocatorError):
    def __init__(self, needed: int):
        super().__init__(
            f"no tier has room for {needed} blocks: recompute instead"
        )
        self.needed = needed


class SequenceSwappedOutError(AllocatorError):
    def __init__(self, seq_id: SeqId):
        super().__init__(f"sequence {seq_id}: already swapped out")
        self.seq_id = seq_id


@dataclass(frozen=True)
class SwappedSequence:
    tier: int
    blocks: tuple[int, ...]
    num_tokens: int


class SwapSpace:
    """Host tiers under one device allocator; transfers are timed."""

    def __init__(
        self, allocator: PagedAllocator, tiers: Sequence[Tier]
    ) -> None:
        self.allocator = allocator
        self.tiers = tuple(tiers)
        self._free = [
            list(range(t.capacity_blocks - 1, -1, -1)) for t in self.tiers
        ]
        self._swapped: dict[SeqId, SwappedSequence] = {}
        self.transfer_seconds = 0.0
        self.swap_outs = 0
        self.swap_ins = 0

    def __contains__(self, seq_id: object) -> bool:
        return seq_id in self._swapped

    def swapped(self) -> dict[SeqId, SwappedSequence]:
        return dict(self._swapped)

    def free_block_ids(self, tier_index: int) -> list[int]:
        return list(self._free[tier_index])

    def swap_out(self, seq_id: SeqId) -> float:
        """Move a sequence's state off the device; return the seconds.

        A block shared with other sequences stays on the device for
        them, but this sequence's copy moves all the same: it comes
        back private.
        """
        if seq_id in self._swapped:
            raise SequenceSwappedOutError(seq_id)
        blocks = len(self.allocator.block_table(seq_id))
        target = next(
            (i for i, free in enumerate(self._free) if len(free) >= blocks),
            None,
        )
        if target is None:
            raise OutOfSwapSpaceError(blocks)
        num_tokens = self.allocator.num_tokens(seq_id)
        self.allocator.free(seq_id)
        taken = tuple(self._free[target].pop() for _ in range(blocks))
        self._swapped[seq_id] = SwappedSequence(target, taken, num_tokens)
        self.swap_outs += 1
        return self._account(target, blocks)

    def swap_in(self, seq_id: SeqId) -> float:
        """Bring a swapped sequence back to the device; return seconds."""
        swapped = self._swapped.get(seq_id)
        if swapped is None:
            raise UnknownSequenceError(seq_id, "not swapped out")
        blocks = len(swapped.blocks)
        if blocks > self.allocator.available_blocks:
            raise OutOfBlocksError(blocks, self.allocator.available_blocks)
        self.allocator.allocate(seq_id)
        if swapped.num_tokens:
            self.allocator.append(seq_id, swapped.num_tokens)
        self._release(seq_id)
        self.swap_ins += 1
        return self._account(swapped.tier, blocks)

    def discard(self, seq_id: SeqId) -> None:
        """End a sequence while it is swapped out."""
        if seq_id not in self._swapped:
            raise UnknownSequenceError(seq_id, "not swapped out")
        self._release(seq_id)

    def _release(self, seq_id: SeqId) -> None:
        swapped = self._swapped.pop(seq_id)
        self._free[swapped.tier].extend(reversed(swapped.blocks))

    def _account(self, tier_index: int, blocks: int) -> float:
        # Staged through every tier above, one link after the other.
        per_block = sum(
            t.seconds_per_block for t in self.tiers[:tier_index + 1]
        )
        seconds = blocks * per_block
        self.transfer_seconds += seconds
        return seconds
