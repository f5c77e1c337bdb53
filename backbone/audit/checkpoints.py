"""Signed checkpoints: the auditor's statement "partition P of topic T had N records, whose
Merkle tree root is R, the last at offset O, at time t", signed with Ed25519.

The signed bytes are a small text note (in the spirit of C2SP's signed checkpoints), so
that anyone can check one with any Ed25519 library and the public key alone:

    backbone-audit-checkpoint/v1
    topic <topic>
    partition <p>
    size <n>
    root <root, hex>
    last-offset <offset of leaf n-1, or -1 for an empty tree>
    time <milliseconds since the epoch>

The JSON form (on the checkpoint topic, in Cassandra's table, in proof bundles) carries
the same fields plus the key id (first 8 bytes of SHA-256 of the public key, hex) and the
signature (base64). A verifier rebuilds the note from the fields, so a field changed in
the JSON fails the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

HEADER = "backbone-audit-checkpoint/v1"


class CheckpointError(ValueError):
    """A checkpoint whose signature does not verify with the key in hand, or is malformed."""


@dataclass(frozen=True)
class TreeHead:
    topic: str
    partition: int
    size: int
    root: bytes
    last_offset: int
    time_ms: int

    def note(self) -> bytes:
        if "\n" in self.topic:
            raise CheckpointError("a topic name cannot contain a newline")
        return (
            f"{HEADER}\ntopic {self.topic}\npartition {self.partition}\nsize {self.size}\n"
            f"root {self.root.hex()}\nlast-offset {self.last_offset}\ntime {self.time_ms}\n"
        ).encode()


@dataclass(frozen=True)
class Checkpoint:
    head: TreeHead
    key_id: str
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self.head)
        d["root"] = self.head.root.hex()
        d["key_id"] = self.key_id
        d["signature"] = base64.b64encode(self.signature).decode()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checkpoint:
        try:
            head = TreeHead(
                topic=str(d["topic"]),
                partition=int(d["partition"]),
                size=int(d["size"]),
                root=bytes.fromhex(d["root"]),
                last_offset=int(d["last_offset"]),
                time_ms=int(d["time_ms"]),
            )
            return cls(head, str(d["key_id"]), base64.b64decode(d["signature"], validate=True))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed checkpoint: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CheckpointError(f"malformed checkpoint: {exc}") from None
        if not isinstance(data, dict):
            raise CheckpointError("malformed checkpoint: not a JSON object")
        return cls.from_dict(data)


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).digest()[:8].hex()


class Signer:
    """Holds the auditor's signing key; never prints it."""

    def __init__(self, seed: bytes) -> None:
        self._key = SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_base64(cls, seed_b64: str) -> Signer:
        seed = base64.b64decode(seed_b64, validate=True)
        if len(seed) != 32:
            raise ValueError("the audit seed must be base64 of 32 bytes")
        return cls(seed)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id}, <seed redacted>)"

    def sign(self, head: TreeHead) -> Checkpoint:
        return Checkpoint(head, self.key_id, self._key.sign(head.note()).signature)

    def verifier(self) -> Verifier:
        return Verifier(self.public_key)


class Verifier:
    """Checks checkpoints against one public key: all an offline verifier needs."""

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._key = VerifyKey(public_key)
        self.public_key = public_key
        self.key_id = key_id(public_key)

    @classmethod
    def from_base64(cls, public_key_b64: str) -> Verifier:
        return cls(base64.b64decode(public_key_b64.strip(), validate=True))

    def check(self, checkpoint: Checkpoint) -> TreeHead:
        """The tree head, if this key signed it; raises CheckpointError otherwise."""
        if checkpoint.key_id != self.key_id:
            raise CheckpointError(
                f"checkpoint signed by key {checkpoint.key_id}, not by {self.key_id}"
            )
        try:
            self._key.verify(checkpoint.head.note(), checkpoint.signature)
        except BadSignatureError:
            raise CheckpointError("checkpoint signature does not verify") from None
        return checkpoint.head


def public_key_b64(public_key: bytes) -> str:
    return base64.b64encode(public_key).decode()
