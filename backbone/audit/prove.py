"""`backbone audit prove` and `backbone audit check`: proof bundles, and checking them
offline with nothing but the auditor's public key.

An inclusion bundle says "this record is leaf i of the tree the auditor signed":

    {"kind": "inclusion", "checkpoint": {...signed head...}, "leaf_index": i,
     "offset": o, "record": {"key": b64, "value": b64}, "leaf_hash": hex, "path": [hex]}

A consistency bundle says "the tree of the first checkpoint is a prefix of the second's":
nothing signed earlier was changed, removed or reordered by the time of the second.

    {"kind": "consistency", "first": {...}, "second": {...}, "path": [hex]}

The record in an inclusion bundle is the ciphertext as it is on the log (the envelope with
its sealed body): the proof never needs, nor shows, what is inside. What the proof binds
is the leaf's index in the signed tree; the offset is where the auditor read that leaf
(signed directly only for the last leaf, as the checkpoint's last offset; on a topic
without transactions or compaction the offset is the index plus the first audited offset).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
from collections.abc import Sequence
from typing import Any

from backbone.audit.checkpoints import Checkpoint, TreeHead, Verifier
from backbone.audit.leaves import record_leaf
from backbone.audit.logread import read_at
from backbone.audit.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from backbone.audit.store import AuditStore


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def check_bundle(bundle: dict[str, Any], verifier: Verifier) -> str:
    """Checks a bundle offline; returns what it proves, raises ProofError or
    CheckpointError (both ValueError) if it does not."""
    kind = bundle.get("kind")
    if kind == "inclusion":
        head = verifier.check(Checkpoint.from_dict(bundle["checkpoint"]))
        leaf = bytes.fromhex(bundle["leaf_hash"])
        record = bundle.get("record")
        if record is not None and leaf != record_leaf(
            _unb64(record.get("key")), _unb64(record.get("value"))
        ):
            raise ProofError("the record does not hash to the proof's leaf")
        index = int(bundle["leaf_index"])
        if index == head.size - 1 and int(bundle["offset"]) != head.last_offset:
            raise ProofError("the last leaf's offset is not the one the checkpoint signed")
        path = [bytes.fromhex(h) for h in bundle["path"]]
        verify_inclusion(leaf, index, head.size, path, head.root)
        what = "the record" if record is not None else "the leaf hash"
        return (
            f"{what} at offset {bundle['offset']} is leaf {index} of {head.topic}/"
            f"{head.partition} in the tree of size {head.size} signed by {verifier.key_id}"
        )
    if kind == "consistency":
        first = verifier.check(Checkpoint.from_dict(bundle["first"]))
        second = verifier.check(Checkpoint.from_dict(bundle["second"]))
        if (first.topic, first.partition) != (second.topic, second.partition):
            raise ProofError("the two checkpoints are of different partitions")
        path = [bytes.fromhex(h) for h in bundle["path"]]
        verify_consistency(first.size, second.size, first.root, second.root, path)
        return (
            f"{first.topic}/{first.partition}: the tree of size {first.size} is a prefix of "
            f"the tree of size {second.size}, both signed by {verifier.key_id}"
        )
    raise ProofError(f"unknown bundle kind {kind!r}")


async def _signed(
    store: AuditStore, topic: str, partition: int, verifier: Verifier
) -> dict[int, tuple[Checkpoint, TreeHead]]:
    out: dict[int, tuple[Checkpoint, TreeHead]] = {}
    for cp in await asyncio.to_thread(lambda: list(store.checkpoints(topic, partition))):
        if isinstance(cp, Checkpoint):
            try:
                out[cp.head.size] = (cp, verifier.check(cp))
            except ValueError:
                continue  # not ours: never prove against it
    return out


def _pick(signed: dict[int, tuple[Checkpoint, TreeHead]], size: int | None) -> Checkpoint:
    if not signed:
        raise ProofError("no signed checkpoint for this partition yet")
    if size is None:
        return signed[max(signed)][0]
    if size not in signed:
        raise ProofError(f"no checkpoint of size {size}; there are {sorted(signed)[-5:]} …")
    return signed[size][0]


async def prove_inclusion(
    bootstrap: str,
    store: AuditStore,
    verifier: Verifier,
    topic: str,
    partition: int,
    offset: int,
    size: int | None = None,
) -> dict[str, Any]:
    signed = await _signed(store, topic, partition, verifier)
    checkpoint = _pick(signed, size)
    head = checkpoint.head
    leaves = await asyncio.to_thread(store.load_leaves, topic, partition, head.size)
    offsets = [o for o, _ in leaves]
    index = bisect.bisect_left(offsets, offset)
    if index >= len(offsets) or offsets[index] != offset:
        raise ProofError(
            f"offset {offset} is not in the tree of size {head.size} (last offset "
            f"{head.last_offset}): not signed yet, or not a record of this partition"
        )
    hashes = [h for _, h in leaves]
    record = await read_at(bootstrap, topic, partition, offset)
    bundle: dict[str, Any] = {
        "kind": "inclusion",
        "checkpoint": checkpoint.to_dict(),
        "leaf_index": index,
        "offset": offset,
        "record": None
        if record is None
        else {"key": _b64(record.key), "value": _b64(record.value)},
        "leaf_hash": hashes[index].hex(),
        "path": [h.hex() for h in inclusion_proof(hashes, index, head.size)],
    }
    if record is not None and record_leaf(record.key, record.value) != hashes[index]:
        raise ProofError(f"the record now at offset {offset} is not the one that was signed")
    check_bundle(bundle, verifier)  # never hand out a proof that does not verify
    return bundle


async def prove_consistency(
    store: AuditStore,
    verifier: Verifier,
    topic: str,
    partition: int,
    first: int | None = None,
    second: int | None = None,
) -> dict[str, Any]:
    """Between two checkpoints (default: the previous one and the latest)."""
    signed = await _signed(store, topic, partition, verifier)
    later = _pick(signed, second)
    if first is None:
        earlier_sizes = [s for s in signed if s < later.head.size]
        if not earlier_sizes:
            raise ProofError("only one checkpoint: nothing to be consistent with")
        first = max(earlier_sizes)
    earlier = _pick(signed, first)
    if earlier.head.size > later.head.size:
        earlier, later = later, earlier
    leaves = await asyncio.to_thread(store.load_leaves, topic, partition, later.head.size)
    hashes: Sequence[bytes] = [h for _, h in leaves]
    bundle = {
        "kind": "consistency",
        "first": earlier.to_dict(),
        "second": later.to_dict(),
        "path": [h.hex() for h in consistency_proof(hashes, earlier.head.size, later.head.size)],
    }
    check_bundle(bundle, verifier)
    return bundle
