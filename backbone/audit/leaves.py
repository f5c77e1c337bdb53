"""What the tree covers: one leaf per record of a partition, in offset order.

A leaf's data is the record's key and value exactly as they are on the log (the Avro
envelope with its sealed body), each length-prefixed so that no two different (key, value)
pairs share an encoding (b"ab" + b"c" and b"a" + b"bc" differ). A missing key or value (a
tombstone) is a length of 0xFFFFFFFF, distinct from an empty one. Nothing is decrypted: the
leaf covers ciphertext, so a record whose data key was shredded verifies as before.

Offsets are not part of the leaf. A leaf's place is its index in the tree; the auditor
stores which offset each index had, and a checkpoint signs the offset of its last leaf.
That keeps a removed record a removal (everything after it still matches, one place
earlier) instead of every later record looking altered.
"""

from __future__ import annotations

import struct

from backbone.audit.merkle import leaf_hash

_ABSENT = struct.pack(">I", 0xFFFFFFFF)


def _part(data: bytes | None) -> bytes:
    if data is None:
        return _ABSENT
    return struct.pack(">I", len(data)) + data


def leaf_data(key: bytes | None, value: bytes | None) -> bytes:
    return _part(key) + _part(value)


def record_leaf(key: bytes | None, value: bytes | None) -> bytes:
    """The leaf hash of one record."""
    return leaf_hash(leaf_data(key, value))
