"""The Merkle tree of RFC 6962 and RFC 9162: hashing, proofs, checks.

Chapter 10, "Audit logging: how to log it (immutable, append-only)". A
log whose entries are the leaves of a Merkle tree can prove two things
in O(log n) hashes: that an entry is in the tree a signed root stands
for (inclusion), and that a later tree only appended to an earlier one
(consistency). A plain hash chain proves the second but makes the first
cost O(n). Leaves and nodes are hashed with different prefixes (0x00,
0x01), so no leaf can pass for a node. The proofs are written here as
the ranges of leaves whose subtree hashes they need, so a store can
fetch those hashes in one query (`perfect_subtrees`) and fold them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

Range = tuple[int, int]  # leaves [start, end)
Node = tuple[int, int]  # (level, index): leaves [index << level, ...)
EMPTY_ROOT = hashlib.sha256(b"").digest()


# --8<-- [start:merkle_hashing]
def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(size: int) -> int:
    """The largest power of two below `size`: where RFC 6962 splits."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The tree head of these leaf hashes (RFC 6962 MTH)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))
# --8<-- [end:merkle_hashing]


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes prove leaf `index` in a tree of
    `size` leaves, leaf side first (RFC 6962 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    return path[::-1]


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The subtrees whose hashes prove that the tree of `second`
    leaves extends the tree of `first` (RFC 6962 PROOF)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    proof: list[Range] = []
    start, end, complete = 0, second, True
    while first != end:
        k = split(end - start)
        if first - start <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            start, complete = start + k, False
    if not complete:
        proof.append((start, end))
    return proof[::-1]


def perfect_subtrees(start: int, end: int) -> list[Node]:
    """[start, end), as the perfect subtrees it is made of, largest
    first: for a range a proof names, their hashes fold into its."""
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from its perfect subtrees' hashes."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def range_hashes(ranges: Iterable[Range],
                 node: Callable[[Node], bytes]) -> list[bytes]:
    return [fold([node(n) for n in perfect_subtrees(*r)]) for r in ranges]


# --8<-- [start:inclusion_check]
def verify_inclusion(leaf: bytes, index: int, size: int,
                     path: Sequence[bytes], root: bytes) -> bool:
    """Does `path` lead from leaf `index` to `root`? (RFC 9162 2.1.3.2)"""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:  # we are a right child, or the last
            result = node_hash(sibling, result)
            while not fn & 1 and fn:  # skip levels with no sibling
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == root
# --8<-- [end:inclusion_check]


def verify_consistency(first: int, second: int, first_root: bytes,
                       second_root: bytes, proof: Sequence[bytes]) -> bool:
    """Does `proof` show that tree `second` only appended to tree
    `first`? (RFC 9162 2.1.4.2)"""
    if first == second:
        return not proof and first_root == second_root
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: its root is a node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


@dataclass
class Frontier:
    """The right edge of a growing tree: one perfect subtree per bit of
    its size. Appending a leaf completes the nodes it closes; the root
    at any size costs O(log n), so a whole log is checked in one pass."""

    size: int = 0
    # (level, hash) of each perfect subtree, largest (leftmost) first
    subtrees: list[tuple[int, bytes]] = field(default_factory=list)

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        """Add a leaf: the nodes it completes, the leaf itself first."""
        index = self.size
        level, value = 0, leaf
        completed = [((0, index), leaf)]
        while self.subtrees and self.subtrees[-1][0] == level:
            _, left = self.subtrees.pop()
            level, value = level + 1, node_hash(left, value)
            completed.append(((level, index >> level), value))
        self.subtrees.append((level, value))
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self.subtrees:
            return EMPTY_ROOT
        return fold([value for _, value in self.subtrees])

    @staticmethod
    def nodes_of(size: int) -> list[Node]:
        """The perfect subtrees a frontier of `size` leaves holds."""
        return perfect_subtrees(0, size)

    @classmethod
    def of(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        levels = [level for level, _ in cls.nodes_of(size)]
        return cls(size, list(zip(levels, hashes, strict=True)))
