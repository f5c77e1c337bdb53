"""What the API process holds for its lifetime, built once in the lifespan."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass

import nacl.signing
from cassandra.cluster import Cluster, Session

from api.bus import CommandBus
from api.mailbox_notifier import MailboxNotifier
from api.ratelimit import Rule, SharedLimits
from api.sender_keys import SenderKeys
from api.stream_slots import StreamSlots
from backbone.replay.pointer import ActiveKeyspace
from backbone.security.challenges import ChallengeIssuer
from backbone.security.passwords import hash_password, verify_password
from backbone.security.tokens import TokenIssuer
from backbone.settings import BackboneSettings
from store.envelopes import EnvelopeCodec
from store.readmodels import ReadStore
from store.topics import TopicNames

# Each Argon2id hash or check holds 64 MiB and a core for ~0.1 s: more at once than there
# are cores adds memory (the API's peak RSS grows by 64 MiB per slot), not throughput.
CONCURRENT_PASSWORD_HASHES = max(1, min(4, os.cpu_count() or 1))


# Per API process. Each upload in flight holds about one 256 KiB chunk in memory (the rest is
# spooled to disk by the form parser); 4 chunk writes of 256 KiB at once keep well under the
# driver's per-connection in-flight limits while still filling the store's bandwidth.
CONCURRENT_UPLOADS = 4
CONCURRENT_CHUNK_WRITES = 4


@dataclass
class ApiState:
    settings: BackboneSettings
    topics: TopicNames
    envelopes: EnvelopeCodec
    # Commands and replies are sealed with the system key; the MessageSent events the API
    # appends itself with their senders' data keys (api/sender_keys.py).
    sender_keys: SenderKeys
    bus: CommandBus
    # The read models' queries (store/readmodels/), over the active keyspace's session.
    reads: ReadStore
    challenges: ChallengeIssuer
    tokens: TokenIssuer
    limits: SharedLimits
    cluster: Cluster
    # The session on the active keyspace, which `backbone replay switch` may change while
    # the API runs (backbone/replay/pointer.py): read `session` at each use, never keep it.
    keyspace: ActiveKeyspace
    password_slots: asyncio.Semaphore
    mailbox: MailboxNotifier
    streams: StreamSlots
    # File uploads storing chunks at once, and chunk writes at once across them
    # (api/routers/files.py): Cassandra refused requests when uploads wrote unbounded.
    upload_slots: asyncio.Semaphore
    chunk_writes: asyncio.Semaphore

    @property
    def session(self) -> Session:
        return self.keyspace.session

    @classmethod
    def build(cls, settings: BackboneSettings, keyspace: ActiveKeyspace) -> ApiState:
        topics = TopicNames(settings.cluster.topic_prefix)
        sender_keys = SenderKeys(settings.master_key_b64, lambda: keyspace.session)
        envelopes = EnvelopeCodec(settings.master_key_b64, sender_keys.get)
        seed = base64.b64decode(settings.signing_seed_b64)
        return cls(
            settings=settings,
            topics=topics,
            envelopes=envelopes,
            sender_keys=sender_keys,
            bus=CommandBus(
                settings.cluster.kafka_bootstrap,
                topics.replies,
                envelopes,
                settings.command_timeout_s,
            ),
            reads=ReadStore.over(lambda: keyspace.session),
            challenges=ChallengeIssuer(
                nacl.signing.SigningKey(seed), ttl_seconds=settings.challenge_ttl_s
            ),
            tokens=TokenIssuer(seed, ttl_seconds=settings.token_ttl_s),
            limits=SharedLimits(
                settings.cluster.kafka_bootstrap,
                topics.api_limits,
                lambda subject: envelopes.aggregate_key("api-limit", subject),
                Rule("username", settings.failed_logins_max, settings.failed_logins_window_s),
            ),
            cluster=keyspace.cluster,
            keyspace=keyspace,
            password_slots=asyncio.Semaphore(CONCURRENT_PASSWORD_HASHES),
            mailbox=MailboxNotifier(settings.cluster.kafka_bootstrap, topics.mailbox_sequenced),
            streams=StreamSlots(),
            upload_slots=asyncio.Semaphore(CONCURRENT_UPLOADS),
            chunk_writes=asyncio.Semaphore(CONCURRENT_CHUNK_WRITES),
        )

    async def hash_password(self, password: str) -> str:
        async with self.password_slots:
            return await asyncio.to_thread(hash_password, password)

    async def verify_password(self, stored: str, password: str) -> bool:
        async with self.password_slots:
            return await asyncio.to_thread(verify_password, stored, password)
