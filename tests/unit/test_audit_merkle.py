"""The Merkle tree against RFC 6962's definitions: roots derived by hand from the
definition, Certificate Transparency's published test vectors, every inclusion and
consistency proof of small trees, and proofs that must fail when one byte changes."""

from __future__ import annotations

import hashlib
import os

import pytest

from backbone.audit import merkle
from backbone.audit.merkle import CompactTree, ProofError


def H(data: bytes) -> bytes:  # the RFC's name
    return hashlib.sha256(data).digest()


def leaf(d: bytes) -> bytes:
    return H(b"\x00" + d)


def node(a: bytes, b: bytes) -> bytes:
    return H(b"\x01" + a + b)


# The leaves of RFC 6962's reference test (certificate-transparency's merkle_tree_test).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
HASHES = [leaf(d) for d in CT_LEAVES]


def test_roots_follow_the_definition_by_hand() -> None:
    a, b, c, d, e = HASHES[:5]
    assert merkle.root([]) == H(b"")
    assert merkle.root([a]) == a
    assert merkle.root([a, b]) == node(a, b)
    # n = 3: k = 2, so MTH = H(1 || MTH(a, b) || MTH(c)).
    assert merkle.root([a, b, c]) == node(node(a, b), c)
    assert merkle.root([a, b, c, d]) == node(node(a, b), node(c, d))
    # n = 5: k = 4: the left subtree is full, the fifth leaf hangs alone on the right.
    assert merkle.root([a, b, c, d, e]) == node(node(node(a, b), node(c, d)), e)


@pytest.mark.parametrize("n", range(len(CT_ROOTS)))
def test_roots_match_certificate_transparency_vectors(n: int) -> None:
    assert merkle.root(HASHES[:n]).hex() == CT_ROOTS[n]


def test_compact_tree_has_the_same_root_at_every_size_and_survives_storage() -> None:
    hashes = [leaf(os.urandom(8)) for _ in range(300)]
    tree = CompactTree()
    for i, h in enumerate(hashes):
        tree.append(h)
        assert len(tree.edge) == tree.size.bit_count()
        assert tree.root() == merkle.root(hashes[: i + 1])
        again = CompactTree.from_bytes(tree.size, tree.to_bytes())
        assert again.root() == tree.root()
    with pytest.raises(ValueError):
        CompactTree.from_bytes(7, b"\x00" * 32)


def test_inclusion_path_by_hand() -> None:
    # RFC 6962 2.1.3's example tree of 7 leaves: the path of d0 is [b, h(c,d), h(e,f,g)].
    a, b, c, d, e, f, g = HASHES[:7]
    assert merkle.inclusion_proof(HASHES[:7], 0) == [b, node(c, d), node(node(e, f), g)]
    # ... and of d3 is [c, h(a,b), h(e,f,g)]; of d6 is [h(e,f), h(a,b,c,d)].
    assert merkle.inclusion_proof(HASHES[:7], 3) == [c, node(a, b), node(node(e, f), g)]
    assert merkle.inclusion_proof(HASHES[:7], 6) == [node(e, f), node(node(a, b), node(c, d))]


def test_consistency_proofs_by_hand() -> None:
    # RFC 6962 2.1.4's examples over the 7-leaf tree.
    a, b, c, d, e, f, g = HASHES[:7]
    hashes = HASHES[:7]
    assert merkle.consistency_proof(hashes, 3, 7) == [c, d, node(a, b), node(node(e, f), g)]
    assert merkle.consistency_proof(hashes, 4, 7) == [node(node(e, f), g)]
    assert merkle.consistency_proof(hashes, 6, 7) == [node(e, f), g, node(node(a, b), node(c, d))]


def test_every_proof_of_small_trees_verifies() -> None:
    hashes = [leaf(os.urandom(6)) for _ in range(40)]
    for n in range(1, 41):
        r = merkle.root(hashes[:n])
        for i in range(n):
            merkle.verify_inclusion(hashes[i], i, n, merkle.inclusion_proof(hashes, i, n), r)
        for m in range(n + 1):
            proof = merkle.consistency_proof(hashes, m, n)
            merkle.verify_consistency(m, n, merkle.root(hashes[:m]), r, proof)


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_inclusion_proof_fails_when_one_byte_changes() -> None:
    hashes = [leaf(os.urandom(6)) for _ in range(13)]
    r = merkle.root(hashes)
    path = merkle.inclusion_proof(hashes, 5)
    merkle.verify_inclusion(hashes[5], 5, 13, path, r)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(_flip(hashes[5]), 5, 13, path, r)  # the leaf
    for k in range(len(path)):
        bad = list(path)
        bad[k] = _flip(bad[k], 31)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(hashes[5], 5, 13, bad, r)  # a path node
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hashes[5], 5, 13, path, _flip(r))  # the root
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hashes[5], 4, 13, path, r)  # another index
    with pytest.raises(ProofError):
        # Another size whose tree has another shape. (A size with the same shape, 14 here,
        # passes the path check: the size is bound by the checkpoint signing it with r.)
        merkle.verify_inclusion(hashes[5], 5, 17, path, r)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hashes[5], 5, 13, path[:-1], r)  # cut short
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hashes[5], 5, 13, [*path, path[0]], r)  # padded
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hashes[5], 13, 13, path, r)  # outside the tree


def test_consistency_proof_fails_when_one_byte_changes() -> None:
    hashes = [leaf(os.urandom(6)) for _ in range(21)]
    r6, r21 = merkle.root(hashes[:6]), merkle.root(hashes)
    proof = merkle.consistency_proof(hashes, 6, 21)
    merkle.verify_consistency(6, 21, r6, r21, proof)
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = _flip(bad[k], 7)
        with pytest.raises(ProofError):
            merkle.verify_consistency(6, 21, r6, r21, bad)
    with pytest.raises(ProofError):
        merkle.verify_consistency(6, 21, _flip(r6), r21, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(6, 21, r6, _flip(r21), proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(5, 21, r6, r21, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(6, 21, r6, r21, [])
    # A rewritten history: the same first six records but a changed seventh.
    forged = [*hashes[:6], leaf(b"forged"), *hashes[7:]]
    with pytest.raises(ProofError):
        merkle.verify_consistency(6, 21, r6, merkle.root(forged), proof)
    # Equal sizes need equal roots; from the empty tree anything is consistent.
    merkle.verify_consistency(21, 21, r21, r21, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(21, 21, r21, r6, [])
    merkle.verify_consistency(0, 21, merkle.EMPTY_ROOT, r21, [])


def test_proof_requests_outside_the_tree_are_refused() -> None:
    with pytest.raises(ProofError):
        merkle.inclusion_proof(HASHES[:3], 3)
    with pytest.raises(ProofError):
        merkle.consistency_proof(HASHES[:3], 2, 4)
