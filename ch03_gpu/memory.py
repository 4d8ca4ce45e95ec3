"""Device memory: the weights, each stream's state, each batch's
activations, and a clear error when they do not fit.

Chapter 3, "KV cache as the central bottleneck". A GPU's memory holds
the model's weights once, then state for every stream or sequence in
flight, then the activations of the batch that is running; whatever is
left decides how many streams fit. An allocation that does not fit is
refused whole with `DeviceOutOfMemoryError` (chapter 7 turns it into an
API error), and the device goes on serving what it already holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

MIB = 1024 * 1024


class DeviceOutOfMemoryError(RuntimeError):
    """An allocation the device cannot hold; nothing was taken."""

    def __init__(self, owner: str, needed: float, free: float,
                 capacity: float) -> None:
        super().__init__(
            f"out of device memory: {owner} needs {needed / MIB:,.1f} MiB,"
            f" {free / MIB:,.1f} MiB free of {capacity / MIB:,.1f} MiB")
        self.needed_bytes = needed
        self.free_bytes = free


class UnknownAllocationError(KeyError):
    """Released something that holds no memory (never, or already)."""


@dataclass
class DeviceMemory:
    """Bytes held by owner, within a fixed capacity."""

    capacity_bytes: float
    _held: dict[str, float] = field(default_factory=dict, init=False)
    _used: float = field(default=0.0, init=False)

    @classmethod
    def unlimited(cls) -> DeviceMemory:
        return cls(math.inf)

    @property
    def used_bytes(self) -> float:
        return self._used

    @property
    def free_bytes(self) -> float:
        return self.capacity_bytes - self._used

    def holds(self, owner: str) -> bool:
        return owner in self._held

    def reserve(self, owner: str, nbytes: float) -> None:
        if nbytes < 0:
            raise ValueError(f"{owner}: cannot reserve {nbytes} bytes")
        if owner in self._held:
            raise ValueError(f"{owner} already holds device memory")
        if nbytes > self.free_bytes:
            raise DeviceOutOfMemoryError(owner, nbytes, self.free_bytes,
                                         self.capacity_bytes)
        self._held[owner] = nbytes
        self._used += nbytes

    def release(self, owner: str) -> float:
        """Give back what `owner` holds; return how many bytes."""
        try:
            nbytes = self._held.pop(owner)
        except KeyError:
            raise UnknownAllocationError(
                f"{owner} holds no device memory") from None
        self._used -= nbytes
        return nbytes

    @contextmanager
    def holding(self, owner: str, nbytes: float) -> Iterator[None]:
        """Memory for the length of a block, as a batch's activations."""
        self.reserve(owner, nbytes)
        try:
            yield
        finally:
            self.release(owner)
