"""RFC 6962/9162 hashing and proofs: the published test vectors, and
every proof for every tree up to 70 leaves against the RFC's own
recursive definitions, with tampered proofs refused."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ch10_compliance.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    range_hashes,
    root_of,
    split,
    verify_consistency,
    verify_inclusion,
)

# The leaves and roots of the RFC 6962 test vectors (Certificate
# Transparency's reference implementations use the same).
VECTOR_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31",
                 b"\x40\x41\x42\x43", bytes(range(0x50, 0x58)),
                 bytes(range(0x60, 0x70))]
VECTOR_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def mth(data: Sequence[bytes]) -> bytes:
    """RFC 6962 section 2.1, as written."""
    if not data:
        return EMPTY_ROOT
    if len(data) == 1:
        return leaf_hash(data[0])
    k = split(len(data))
    return node_hash(mth(data[:k]), mth(data[k:]))


def path(m: int, data: Sequence[bytes]) -> list[bytes]:
    if len(data) <= 1:
        return []
    k = split(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def subproof(m: int, data: Sequence[bytes], whole: bool) -> list[bytes]:
    if m == len(data):
        return [] if whole else [mth(data)]
    k = split(len(data))
    if m <= k:
        return [*subproof(m, data[:k], whole), mth(data[k:])]
    return [*subproof(m - k, data[k:], False), mth(data[:k])]


def test_roots_match_the_published_vectors() -> None:
    leaves = [leaf_hash(d) for d in VECTOR_LEAVES]
    for size, expected in enumerate(VECTOR_ROOTS, start=1):
        assert root_of(leaves[:size]).hex() == expected
    assert root_of([]) == EMPTY_ROOT


def test_leaves_and_nodes_cannot_pass_for_each_other() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) != leaf_hash(left + right)


@pytest.mark.parametrize("size", range(1, 71))
def test_every_proof_matches_the_rfc(size: int) -> None:
    data = [i.to_bytes(2, "big") for i in range(size)]
    leaves = [leaf_hash(d) for d in data]
    root = mth(data)
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.root() == root

    def node(n: tuple[int, int]) -> bytes:
        level, index = n
        return root_of(leaves[index << level:(index + 1) << level])

    for m in range(size):
        proof = range_hashes(inclusion_ranges(m, size), node)
        assert proof == path(m, data)
        assert verify_inclusion(leaves[m], m, size, proof, root)
        other = leaf_hash(b"not " + data[m])
        assert not verify_inclusion(other, m, size, proof, root)
        if proof:
            assert not verify_inclusion(leaves[m], m, size, proof[:-1],
                                        root)
    for m in range(1, size + 1):
        proof = range_hashes(consistency_ranges(m, size), node)
        assert proof == subproof(m, data, True)
        assert verify_consistency(m, size, mth(data[:m]), root, proof)
        if m < size:
            rewritten = mth([b"x", *data[1:m]])
            assert not verify_consistency(m, size, rewritten, root, proof)


def test_the_frontier_names_the_nodes_each_leaf_completes() -> None:
    frontier = Frontier()
    completed = [frontier.append(leaf_hash(bytes([i])))
                 for i in range(4)]
    assert [n for n, _ in completed[3]] == [(0, 3), (1, 1), (2, 0)]
    assert Frontier.nodes_of(6) == [(2, 0), (1, 2)]
    assert perfect_subtrees(4, 7) == [(1, 2), (0, 6)]
    assert perfect_subtrees(2, 7) == [(1, 1), (1, 2), (0, 6)]


def test_proofs_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_ranges(5, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_ranges(6, 5)
    assert not verify_inclusion(leaf_hash(b""), 3, 3, [], EMPTY_ROOT)
    # A path longer than the tree is tall: refused, not folded on.
    leaves = [leaf_hash(bytes([i])) for i in range(4)]
    root = root_of(leaves)
    path = [leaves[1], node_hash(leaves[2], leaves[3])]
    assert verify_inclusion(leaves[0], 0, 4, path, root)
    assert not verify_inclusion(leaves[0], 0, 4, [*path, root], root)
    assert not verify_consistency(
        2, 4, root_of(leaves[:2]), root,
        [node_hash(leaves[2], leaves[3]), root])
    assert not verify_consistency(2, 1, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(3, 3, EMPTY_ROOT, EMPTY_ROOT, [])
