"""The deciders' state forgets a deleted identity (issue 22).

The token, template, file, message and pair deciders keep their state in faust tables whose
changelogs (compacted Kafka topics) are sealed with a key derived from the master key, not
with the identity's data key: shredding that key leaves the identity's address readable
there. So the final step (streams/deletion_final.py) sends `ForgetIdentity` to every such
aggregate it was part of, on the aggregate's own command topic (its single writer; a table
write goes to the changelog partition of the record being processed, so only that agent
can overwrite the aggregate's changelog entry). The agent then drops the state of an
aggregate the identity owned (a changelog tombstone) and replaces its address by the
anonymous one in any other (a peer's template it allocated on, a relationship, a message).

The command names the identity by the SHA-256 of its address, as the audit record does:
commands are sealed with the system key and stay on the log, so they must not carry it.
"""

from __future__ import annotations

from typing import Any

from backbone.deletion_policy import sha256_hex

# The faust tables a deletion rewrites, with the command topic of each (store/topics.py).
FORGETTING = ("token", "template", "file", "message", "pair")


def forgotten(stored: dict[str, Any] | None, address_hash: str, anon: str) -> dict[str, Any] | None:
    """The state to keep after the identity with `address_hash` was deleted: None to drop it
    (the identity owned the aggregate), else the state with every occurrence of its address
    (a value, an item of a list, a key of a map) replaced by `anon`."""
    if stored is None:
        return None
    owner = stored.get("owner")
    if isinstance(owner, str) and sha256_hex(owner) == address_hash:
        return None
    cache: dict[str, bool] = {}

    def its(text: str) -> bool:
        if "did:e:" not in text:
            return False
        if text not in cache:
            cache[text] = sha256_hex(text) == address_hash
        return cache[text]

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return anon if its(value) else value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        return value

    out: dict[str, Any] = walk(stored)
    return out


def forget(table: Any, key: str, body: dict[str, Any]) -> None:
    """Apply a `ForgetIdentity` command to the agent's table (idempotent: a rerun finds the
    state already dropped or anonymized)."""
    stored = table.get(key)
    if stored is None:
        return
    kept = forgotten(stored, body["address_hash"], body["anonymous"])
    if kept is None:
        del table[key]  # a tombstone on the changelog
    elif kept != stored:
        table[key] = kept
