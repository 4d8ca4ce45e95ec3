"""Three ways to place a request's state, behind one interface.

Chapter 3, "PagedAttention: virtual memory for KV cache". The replay
that compares allocators asks the same questions of each: can this
request start, make room for one more token, give this memory back.
Contiguous placements reserve everything up front (the context window,
or the exact final length); the paged one grows block by block and,
when the device is full, preempts by swapping to host tiers as vLLM
does, or by dropping state to recompute when no tier has room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from ch03_gpu.contiguous_allocator import ContiguousArena
from ch03_gpu.paged_allocator import OutOfBlocksError, PagedAllocator
from ch03_gpu.request_trace import Request
from ch03_gpu.state_tiers import OutOfSwapSpaceError, SwapSpace, Tier

# vLLM's scheduler keeps 1% of blocks free when admitting a request, so
# that the sequences already running can grow without preemption.
ADMISSION_WATERMARK = 0.01


class StatePlacement(Protocol):
    name: str

    def fits_alone(self, request: Request) -> bool:
        """Whether the request fits an otherwise empty memory."""
        ...

    def admit(self, request: Request) -> bool:
        """Place the prompt's state; False (nothing changed) if it waits."""
        ...

    def grow(self, request_id: int) -> None:
        """Room for one more token, or OutOfBlocksError if there is none."""
        ...

    def release(self, request_id: int) -> None: ...

    def preempt(self, request_id: int, tokens: int) -> None:
        """Take a running request's state (`tokens` long) off the device."""
        ...

    def resume(self, request_id: int) -> bool:
        """Bring a preempted request back; False if it must wait."""
        ...

    def held_tokens(self) -> int:
        """Token slots given to running requests, written or not."""
        ...

    def free_tokens(self) -> int: ...

    def split_free_memory(self, request: Request) -> bool:
        """Free memory would hold `request`, but no single piece does."""
        ...


class ContiguousPlacement:
    """One extent per request, reserved up front, first fit."""

    def __init__(
        self, name: str, capacity_tokens: int, max_len: int | None
    ) -> None:
        self.name = name
        self.arena = ContiguousArena(capacity_tokens)
        self.max_len = max_len  # None: reserve the exact final length
        self._preempted: dict[int, int] = {}

    def reservation(self, request: Request) -> int:
        return self.max_len or request.total_tokens

    def fits_alone(self, request: Request) -> bool:
        size = self.reservation(request)
        return request.total_tokens <= size <= self.arena.capacity

    def admit(self, request: Request) -> bool:
        if self.reservation(request) > self.arena.largest_hole():
            return False
        self.arena.reserve(request.request_id, self.reservation(request))
        return True

    def grow(self, request_id: int) -> None:
        pass  # the reservation already covers every token

    def release(self, request_id: int) -> None:
        self.arena.release(request_id)

    def preempt(self, request_id: int, tokens: int) -> None:
        # Never needed while reservations cover the final length; kept so
        # that the replay treats every placement alike.
        _, size = self.arena.extent(request_id)
        self.arena.release(request_id)
        self._preempted[request_id] = size

    def resume(self, request_id: int) -> bool:
        if self._preempted[request_id] > self.arena.largest_hole():
            return False
        self.arena.reserve(request_id, self._preempted.pop(request_id))
        return True

    def held_tokens(self) -> int:
        return self.arena.held_tokens

    def free_tokens(self) -> int:
        return self.arena.free_tokens

    def split_free_memory(self, request: Request) -> bool:
        size = self.reservation(request)
        return self.arena.free_tokens >= size > self.arena.largest_hole()


def max_length_placement(
    capacity_tokens: int, max_len: int
) -> ContiguousPlacement:
    """Every request reserves the context window, as pre-vLLM servers."""
    return ContiguousPlacement("contiguous max-len", capacity_tokens, max_len)


def exact_size_placement(capacity_tokens: int) -> ContiguousPlacement:
    """Every request reserves its final length, known by an oracle."""
    return ContiguousPlacement("contiguous exact", capacity_tokens, None)


class PagedPlacement:
    """Blocks on demand; preemption swaps to host tiers or recomputes."""

    name = "paged"

    def __init__(
        self, num_blocks: int, block_tokens: int, tiers: Sequence[Tier]
    ) -> None:
        self.allocator = PagedAllocator(num_blocks, block_tokens)
        self.swap = SwapSpace(self.allocator, tiers)
        self.watermark_blocks = math.ceil(ADMISSION_WATERMARK * num_blocks)
        self._to_recompute: dict[int, int] = {}
        self.recomputed_tokens = 0

    def blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.allocator.block_tokens)

    def fits_alone(self, request: Request) -> bool:
        return self.blocks_for(request.total_tokens) <= (
            self.allocator.num_blocks
        ) and self.blocks_for(request.prompt_tokens) <= (
            self.allocator.num_blocks - self.watermark_blocks
        )

    def admit(self, request: Request) -> bool:
        needed = self.blocks_for(request.prompt_tokens)
        spare = self.allocator.available_blocks - needed
        if spare < self.watermark_blocks:
            return False
        self.allocator.allocate(request.request_id)
        self.allocator.append(request.request_id, request.prompt_tokens)
        return True

    def grow(self, request_id: int) -> None:
        self.allocator.append(request_id)

    def release(self, request_id: int) -> None:
        self.allocator.free(request_id)

    def preempt(self, request_id: int, tokens: int) -> None:
        try:
            self.swap.swap_out(request_id)
        except OutOfSwapSpaceError:
            # No tier has room: drop the state and compute it again later.
            self.allocator.free(request_id)
            self._to_recompute[request_id] = tokens

    def resume(self, request_id: int) -> bool:
        tokens = self._to_recompute.get(request_id)
        if tokens is None:
            try:
                self.swap.swap_in(request_id)
            except OutOfBlocksError:
                return False
            return True
        if self.blocks_for(tokens) > self.allocator.available_blocks:
            return False
        self.allocator.allocate(request_id)
        self.allocator.append(request_id, tokens)
        self.recomputed_tokens += tokens
        del self._to_recompute[request_id]
        return True

    def held_tokens(self) -> int:
        return self.allocator.used_blocks * self.allocator.block_tokens

    def free_tokens(self) -> int:
        return self.allocator.available_blocks * self.allocator.block_tokens

    def split_free_memory(self, request: Request) -> bool:
        return False  # any free block serves any request
