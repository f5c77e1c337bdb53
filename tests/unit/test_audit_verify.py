"""Naming tampering: the alignment of signed leaves with the leaves read back, signed
checkpoints and their rejection, and offline checking of proof bundles."""

from __future__ import annotations

import base64
import os

import pytest

from backbone.audit import merkle
from backbone.audit.checkpoints import Checkpoint, CheckpointError, Signer, TreeHead
from backbone.audit.leaves import leaf_data, record_leaf
from backbone.audit.prove import check_bundle
from backbone.audit.verify import (
    ALTERED,
    BAD_CHECKPOINT,
    BAD_LEAVES,
    FORK,
    INSERTED,
    REMOVED,
    REORDERED,
    UNCOVERED,
    PartitionReport,
    compare,
    trusted_prefix,
    valid_heads,
)

RECORDS = [(f"key-{i}".encode(), os.urandom(40)) for i in range(30)]


def _leaves(records: list[tuple[bytes, bytes]]) -> list[tuple[int, bytes]]:
    return [(offset, record_leaf(k, v)) for offset, (k, v) in enumerate(records)]


def test_an_untouched_log_has_no_findings_and_new_records_are_uncovered() -> None:
    signed = _leaves(RECORDS)
    assert compare(signed, signed) == []
    grown = _leaves([*RECORDS, (b"k", b"new"), (b"k", b"newer")])
    found = compare(signed, grown)
    assert [(f.kind, f.read_offset) for f in found] == [(UNCOVERED, 30), (UNCOVERED, 31)]


def test_altered_removed_swapped_and_inserted_records_are_named_at_their_offsets() -> None:
    copy = list(RECORDS)
    copy[3] = (copy[3][0], copy[3][1][:-1] + b"!")  # one record altered
    copy[12], copy[13] = copy[13], copy[12]  # two swapped
    copy.insert(19, (b"key-forged", b"forged"))  # one inserted after the 19th
    del copy[7]  # one removed
    found = {
        (f.kind, f.signed_offset, f.read_offset) for f in compare(_leaves(RECORDS), _leaves(copy))
    }
    assert (ALTERED, 3, 3) in found
    assert (REMOVED, 7, None) in found
    # After the removal every later record sits one offset earlier in the copy.
    assert found & {(REORDERED, 12, 12), (REORDERED, 13, 11)}
    assert (INSERTED, None, 18) in found
    assert len(found) == 4, found


def test_leaf_encoding_tells_apart_what_concatenation_would_not() -> None:
    assert leaf_data(b"ab", b"c") != leaf_data(b"a", b"bc")
    assert leaf_data(None, b"") != leaf_data(b"", b"")
    assert leaf_data(b"k", None) != leaf_data(b"k", b"")


SIGNER = Signer(bytes(range(32)))
OTHER = Signer(bytes(32))


def _head(size: int, leaves: list[tuple[int, bytes]]) -> TreeHead:
    hashes = [h for _, h in leaves[:size]]
    last = leaves[size - 1][0] if size else -1
    return TreeHead("t.events", 0, size, merkle.root(hashes), last, 1_700_000_000_000 + size)


def test_a_checkpoint_signed_with_another_key_is_rejected() -> None:
    leaves = _leaves(RECORDS)
    good = SIGNER.sign(_head(10, leaves))
    assert SIGNER.verifier().check(Checkpoint.from_json(good.to_json())) == good.head
    foreign = OTHER.sign(_head(20, leaves))
    with pytest.raises(CheckpointError):
        SIGNER.verifier().check(foreign)
    # Another key's signature under our key id, and a field changed after signing.
    forged = Checkpoint(foreign.head, SIGNER.key_id, foreign.signature)
    with pytest.raises(CheckpointError):
        SIGNER.verifier().check(forged)
    moved = good.to_dict() | {"size": 11}
    with pytest.raises(CheckpointError):
        SIGNER.verifier().check(Checkpoint.from_dict(moved))
    report = PartitionReport("t.events", 0, "t.events")
    heads = valid_heads([good, foreign, forged], SIGNER.verifier(), report)
    assert [h.size for h in heads] == [10]
    assert [f.kind for f in report.findings] == [BAD_CHECKPOINT, BAD_CHECKPOINT]
    assert "key" not in repr(SIGNER).replace("key_id", "")


def test_two_roots_for_one_size_are_a_fork() -> None:
    leaves = _leaves(RECORDS)
    other = _leaves([(b"x", b"y"), *RECORDS[1:]])
    report = PartitionReport("t.events", 0, "t.events")
    valid_heads(
        [SIGNER.sign(_head(5, leaves)), SIGNER.sign(_head(5, other))], SIGNER.verifier(), report
    )
    assert [f.kind for f in report.findings] == [FORK]


def test_stored_leaves_are_trusted_only_as_far_as_they_give_the_signed_roots() -> None:
    leaves = _leaves(RECORDS)
    heads = [_head(s, leaves) for s in (4, 9, 30)]
    report = PartitionReport("t.events", 0, "t.events")
    assert trusted_prefix(leaves, heads, report) == 30
    assert report.findings == []
    tampered = list(leaves)
    tampered[6] = (6, record_leaf(b"x", b"y"))
    assert trusted_prefix(tampered, heads, report) == 4
    assert [f.kind for f in report.findings] == [BAD_LEAVES]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle(index: int, size: int) -> dict[str, object]:
    leaves = _leaves(RECORDS)
    hashes = [h for _, h in leaves]
    key, value = RECORDS[index]
    return {
        "kind": "inclusion",
        "checkpoint": SIGNER.sign(_head(size, leaves)).to_dict(),
        "leaf_index": index,
        "offset": index,
        "record": {"key": _b64(key), "value": _b64(value)},
        "leaf_hash": hashes[index].hex(),
        "path": [h.hex() for h in merkle.inclusion_proof(hashes, index, size)],
    }


def test_an_inclusion_bundle_checks_offline_and_fails_when_one_byte_changes() -> None:
    verifier = SIGNER.verifier()
    assert "leaf 7" in check_bundle(_bundle(7, 25), verifier)
    changed = _bundle(7, 25)
    record = changed["record"]
    assert isinstance(record, dict)
    value = bytearray(base64.b64decode(record["value"]))
    value[0] ^= 1
    record["value"] = base64.b64encode(bytes(value)).decode()
    with pytest.raises(ValueError):
        check_bundle(changed, verifier)
    path = _bundle(7, 25)
    nodes = path["path"]
    assert isinstance(nodes, list)
    nodes[1] = ("0" if nodes[1][0] != "0" else "1") + nodes[1][1:]
    with pytest.raises(ValueError):
        check_bundle(path, verifier)
    with pytest.raises(ValueError):
        check_bundle(_bundle(7, 25), OTHER.verifier())


def test_a_consistency_bundle_checks_offline_and_fails_when_one_byte_changes() -> None:
    leaves = _leaves(RECORDS)
    hashes = [h for _, h in leaves]
    bundle = {
        "kind": "consistency",
        "first": SIGNER.sign(_head(11, leaves)).to_dict(),
        "second": SIGNER.sign(_head(29, leaves)).to_dict(),
        "path": [h.hex() for h in merkle.consistency_proof(hashes, 11, 29)],
    }
    assert "prefix" in check_bundle(bundle, SIGNER.verifier())
    first = bundle["first"]
    assert isinstance(first, dict)
    first["root"] = ("0" if first["root"][0] != "0" else "1") + first["root"][1:]
    with pytest.raises(ValueError):
        check_bundle(bundle, SIGNER.verifier())  # the signature no longer holds
    resigned = SIGNER.sign(TreeHead("t.events", 0, 11, bytes.fromhex(first["root"]), 10, 1))
    bundle["first"] = resigned.to_dict()
    with pytest.raises(ValueError):
        check_bundle(bundle, SIGNER.verifier())  # signed, but not a prefix of the second
