"""The auditor's own settings. Kept beside the audit code rather than in
backbone/settings.py: the auditor is a separate process with a separate key, and nothing
else in the backbone needs these.

BACKBONE_AUDIT_SEED        base64 of 32 bytes, the auditor's Ed25519 signing seed (never
                           logged); default: made once in <state>/secrets/audit.seed
BACKBONE_AUDIT_PUBLIC_KEY  base64 public key verify and prove trust, for an operator
                           without the seed; default: the public half of the seed
BACKBONE_AUDIT_KEYSPACE    audit state, leaf hashes, checkpoints; default <keyspace>_audit
BACKBONE_AUDIT_TOPICS      source topics without the prefix; default events,mailbox-entries
BACKBONE_AUDIT_INTERVAL    seconds between checkpoints of a partition that grew; default 10
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from backbone.audit.checkpoints import Signer, Verifier
from backbone.settings import ClusterSettings, _env, _secret
from store.topics import TopicNames

DEFAULT_TOPICS = ("events", "mailbox-entries")


@dataclass(frozen=True)
class AuditSettings:
    cluster: ClusterSettings
    keyspace: str
    topics: tuple[str, ...]  # full topic names, prefix included
    interval_s: float
    checkpoint_topic: str

    @classmethod
    def from_env(cls, cluster: ClusterSettings | None = None) -> AuditSettings:
        cluster = cluster or ClusterSettings.from_env()
        raw = _env("BACKBONE_AUDIT_TOPICS", ",".join(DEFAULT_TOPICS))
        topics = tuple(f"{cluster.topic_prefix}{t.strip()}" for t in raw.split(",") if t.strip())
        return cls(
            cluster=cluster,
            keyspace=_env("BACKBONE_AUDIT_KEYSPACE", f"{cluster.keyspace}_audit"),
            topics=topics,
            interval_s=float(_env("BACKBONE_AUDIT_INTERVAL", "10")),
            checkpoint_topic=checkpoint_topic(cluster.topic_prefix),
        )


def checkpoint_topic(prefix: str) -> str:
    return TopicNames(prefix).audit_checkpoints


def signer() -> Signer:
    """The auditor's key: from BACKBONE_AUDIT_SEED, else made once in the state directory
    (mode 0600) like the backbone's other secrets."""
    return Signer.from_base64(_secret("BACKBONE_AUDIT_SEED", "audit.seed"))


def verifier() -> Verifier:
    """The key verify and prove trust: BACKBONE_AUDIT_PUBLIC_KEY when set (an operator who
    must not hold the seed), else the public half of the auditor's own seed."""
    public = os.environ.get("BACKBONE_AUDIT_PUBLIC_KEY", "").strip()
    if public:
        return Verifier.from_base64(public)
    return signer().verifier()
