"""Prefix caching: finding a prompt's blocks again by their hash.

Chapter 3, "KV cache reuse: RadixAttention, prefix caching for chat and
RAG". Two requests that open with the same system prompt or document
compute the same keys and values for it. As in vLLM's automatic prefix
caching, each full block of prompt tokens is named by a hash of its
tokens chained with the hash of the block before it, so a hash names a
whole prefix, a lookup walks a new prompt block by block, and the walk
ends at the first block never seen. Blocks that no sequence uses any
more stay cached, evictable in least-recently-used order, until the
allocator needs them back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

# The chain starts from a fixed value, so that a block's hash depends
# on every token before it and nothing else.
ROOT_HASH = 0


def block_hashes(tokens: Sequence[int], block_tokens: int) -> list[int]:
    """One hash per full block of `tokens`, each chained to the last."""
    hashes, parent = [], ROOT_HASH
    for start in range(0, len(tokens) - block_tokens + 1, block_tokens):
        parent = hash((parent, tuple(tokens[start:start + block_tokens])))
        hashes.append(parent)
    return hashes


class PrefixCache:
    """Full blocks by prefix hash; unused ones evictable, oldest first."""

    def __init__(self) -> None:
        self._block_by_hash: dict[int, int] = {}
        self._hash_by_block: dict[int, int] = {}
        # Cached blocks no sequence owns, least recently used first.
        self._evictable: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        """How many blocks are cached but evictable."""
        return len(self._evictable)

    def lookup(self, prefix_hash: int) -> int | None:
        return self._block_by_hash.get(prefix_hash)

    def register(self, block: int, prefix_hash: int) -> None:
        """Remember an owned, full block under its prefix hash."""
        # The first block to hold a prefix keeps the name: a later copy
        # is an ordinary block, freed like any other.
        if prefix_hash not in self._block_by_hash:
            self._block_by_hash[prefix_hash] = block
            self._hash_by_block[block] = prefix_hash

    def is_cached(self, block: int) -> bool:
        return block in self._hash_by_block

    def is_evictable(self, block: int) -> bool:
        return block in self._evictable

    def park(self, block: int) -> bool:
        """Keep a block no sequence owns; False if it is not cached."""
        if block not in self._hash_by_block:
            return False
        self._evictable[block] = None
        return True

    def revive(self, block: int) -> None:
        """A sequence owns a parked block again: it is not evictable."""
        del self._evictable[block]

    def evict(self) -> int | None:
        """Forget the least recently used evictable block and return it."""
        if not self._evictable:
            return None
        block, _ = self._evictable.popitem(last=False)
        del self._block_by_hash[self._hash_by_block.pop(block)]
        return block

    def evictable_blocks(self) -> list[int]:
        return list(self._evictable)

    def cached_blocks(self) -> dict[int, int]:
        """Every cached block and its prefix hash."""
        return dict(self._hash_by_block)
