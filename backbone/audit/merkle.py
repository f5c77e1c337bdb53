"""Merkle tree hashing and proofs exactly as RFC 6962 section 2.1 (and RFC 9162 section
2.1) define them, with SHA-256:

    MTH({})      = SHA-256()
    MTH({d0})    = SHA-256(0x00 || d0)                      (a leaf hash)
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k: largest power of 2 < n

Leaves and interior nodes are hashed with different prefixes, so a leaf can never be
passed off as a node (second-preimage resistance). Everything here is pure and works on
leaf *hashes* (32 bytes each): the auditor stores those, and proofs are built from them
without the records. `CompactTree` keeps only the right edge of the tree (at most log2(n)
hashes), so the auditor appends a leaf in O(1) amortised hashes and knows the root at any
size without keeping the leaves in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

HASH_BYTES = 32
_LEAF = b"\x00"
_NODE = b"\x01"


class ProofError(ValueError):
    """A proof does not verify, or asks for sizes or indexes the tree does not have."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes], start: int = 0, end: int | None = None) -> bytes:
    """MTH of the leaf hashes leaves[start:end]."""
    end = len(leaves) if end is None else end
    n = end - start
    if n < 0 or end > len(leaves):
        raise ProofError(f"no leaves {start}..{end} in a list of {len(leaves)}")
    if n == 0:
        return EMPTY_ROOT
    # Bottom-up: pair neighbours, carry an odd last node up unchanged. For RFC 6962's
    # left-heavy split this is the same tree as the recursive definition, without the
    # recursion or the slices.
    level = list(leaves[start:end])
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 2.1.1: the audit path of leaf `index` in the tree
    of the first `size` leaves."""
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ProofError(f"no leaf {index} in a tree of size {size}")
    path: list[bytes] = []
    start, end, m = 0, size, index
    # Walk down from the root; the RFC's path lists the sibling nearest the leaf first,
    # so collect top-down and reverse.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            path.append(root(leaves, start + k, end))
            end = start + k
        else:
            path.append(root(leaves, start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 6962 2.1.2: that the tree of `first` leaves is a
    prefix of the tree of `second` leaves."""
    if not 0 <= first <= second <= len(leaves):
        raise ProofError(f"no consistency between sizes {first} and {second}")
    if first == 0 or first == second:
        return []
    out: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                out.append(root(leaves, start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            out.append(root(leaves, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            out.append(root(leaves, start, start + k))

    subproof(first, 0, second, True)
    return out


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless `leaf` (a leaf hash) is leaf `index` of
    the tree of `size` leaves whose root is `expected_root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof shorter than the tree is deep")
    if r != expected_root:
        raise ProofError("inclusion proof does not lead to the tree's root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless the tree of `first` leaves with root
    `first_root` is a prefix of the tree of `second` leaves with root `second_root`."""
    if not 0 <= first <= second:
        raise ProofError(f"sizes {first} and {second} are not in order")
    if first == second:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("two trees of the same size with different roots")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return  # every tree extends the empty one
    if not proof:
        raise ProofError("empty consistency proof between different sizes")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof shorter than the tree is deep")
    if fr != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("consistency proof does not lead to the second root")


@dataclass
class CompactTree:
    """The right edge of a growing tree: one root per full subtree, largest first (their
    sizes are the one-bits of `size`). Appending merges equal-sized subtrees like a
    binary counter's carry; the root folds the edge from the smallest subtree up."""

    size: int = 0
    edge: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        self.edge.append(leaf)
        self.size += 1
        # Each trailing zero bit of the new size is a pair of equal subtrees to merge.
        n = self.size
        while not n & 1:
            right = self.edge.pop()
            self.edge[-1] = node_hash(self.edge[-1], right)
            n >>= 1

    def root(self) -> bytes:
        if not self.edge:
            return EMPTY_ROOT
        r = self.edge[-1]
        for h in reversed(self.edge[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> CompactTree:
        return CompactTree(self.size, list(self.edge))

    def to_bytes(self) -> bytes:
        return b"".join(self.edge)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactTree:
        if len(data) != HASH_BYTES * size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} edge hashes")
        edge = [data[i : i + HASH_BYTES] for i in range(0, len(data), HASH_BYTES)]
        return cls(size, edge)
