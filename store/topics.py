"""Creating Kafka topics explicitly, with their partition counts and configs.

The local broker runs with auto-creation off, so every topic is made here first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from backbone.connections import kafka_client_kwargs


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


class ProvisioningError(RuntimeError):
    """The cluster cannot honour the settings; the message names the setting."""


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    Every new topic gets `replication_factor` copies and refuses an `acks=all` write that
    fewer than `min_insync_replicas` of them have taken."""
    wanted = list(specs)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(bootstrap))
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster()).get("brokers", []))
        if replication_factor > brokers:
            raise ProvisioningError(
                f"BACKBONE_KAFKA_REPLICATION_FACTOR is {replication_factor}, but the Kafka "
                f"cluster at {bootstrap} has {brokers} broker(s): lower it or add brokers"
            )
        existing = set(await admin.list_topics())
        insync = {"min.insync.replicas": str(min_insync_replicas)}
        missing = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=replication_factor,
                topic_configs={**insync, **s.configs},
            )
            for s in wanted
            if s.name not in existing
        ]
        if missing:
            # Another process may create one between our list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicNames:
    """Every topic of the backbone, under one prefix (per deployment, per test run)."""

    prefix: str

    @property
    def identity_commands(self) -> str:
        return f"{self.prefix}identity-commands"

    @property
    def template_commands(self) -> str:
        return f"{self.prefix}template-commands"

    @property
    def token_commands(self) -> str:
        return f"{self.prefix}token-commands"

    @property
    def file_commands(self) -> str:
        return f"{self.prefix}file-commands"

    @property
    def relationship_commands(self) -> str:
        return f"{self.prefix}relationship-commands"

    @property
    def message_commands(self) -> str:
        return f"{self.prefix}message-commands"

    @property
    def mailbox_sequenced(self) -> str:
        """Which identity's mailbox grew to which index: wakes the API's open streams."""
        return f"{self.prefix}mailbox-sequenced"

    @property
    def mailbox_entries(self) -> str:
        """External events per identity, keyed by identity, before the sequencer numbers them."""
        return f"{self.prefix}mailbox-entries"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def replies(self) -> str:
        return f"{self.prefix}replies"

    @property
    def audit_checkpoints(self) -> str:
        """The auditor's signed checkpoints (backbone/audit): evidence, kept for ever."""
        return f"{self.prefix}audit-checkpoints"

    @property
    def api_limits(self) -> str:
        """Failed password checks, which every API replica reads to share its limits
        (api/ratelimit.py): keyed hashes, needed for minutes only."""
        return f"{self.prefix}api-limits"

    def specs(self, partitions: int) -> list[TopicSpec]:
        # Commands and replies are requests in flight: a day is plenty. Events are the
        # source of truth and are kept forever.
        short = {"retention.ms": str(DAY_MS)}
        return [
            TopicSpec(self.identity_commands, partitions, short),
            TopicSpec(self.template_commands, partitions, short),
            TopicSpec(self.token_commands, partitions, short),
            TopicSpec(self.file_commands, partitions, short),
            TopicSpec(self.relationship_commands, partitions, short),
            TopicSpec(self.message_commands, partitions, short),
            TopicSpec(self.mailbox_sequenced, partitions, {"retention.ms": str(3600 * 1000)}),
            # Kept for ever like the events: the mailbox indexes are a function of this
            # topic's record order, which the events alone do not fix, so a replay gives
            # every identity the same indexes only from all of it (`backbone replay`).
            TopicSpec(self.mailbox_entries, partitions, {"retention.ms": "-1"}),
            TopicSpec(self.events, partitions, {"retention.ms": "-1"}),
            TopicSpec(self.replies, partitions, {"retention.ms": str(3600 * 1000)}),
            TopicSpec(self.audit_checkpoints, 1, {"retention.ms": "-1"}),
            TopicSpec(self.api_limits, partitions, {"retention.ms": str(3600 * 1000)}),
        ]

    @staticmethod
    def changelog_specs(app_id: str, partitions: int) -> list[TopicSpec]:
        """The workers' table changelogs (faust names them `<app id>-<table>-changelog`).

        Made here rather than by faust at start, so that they exist before the first worker
        joins (faust's assignor skips a topic that is missing at that moment, and a global
        table then never loads) and so that their compaction is explicit.
        """
        compact = {"cleanup.policy": "compact"}
        return [
            TopicSpec(
                f"{app_id}-{table}-changelog",
                partitions,
                ERASABLE_COMPACTION if table in ERASABLE else compact,
            )
            for table in TABLES
        ]


# Issue 22, crypto-shredding: deleting an identity writes a tombstone over its wrapped data
# key, and the erased marker over its decider state (which held its address and
# usernames); the old values are gone from the broker's disks only once the cleaner
# compacted the segment they are in. A segment rolls after at most an hour and is compacted
# within a day of the newer record (max.compaction.lag.ms), however little else changed;
# a tombstone then stays a day (delete.retention.ms), time enough for every worker's global
# table, which reads the topic whole on start, to see it before it goes. So a shredded key
# is on Kafka's disks (every replica) for at most about a day and an hour.
# The deciders' tables whose state named a deleted identity get its tombstone or its
# anonymized state from the final step (domain/deletion_forget.py): the same bound.
ERASABLE = ("data-keys", "identities", "templates", "tokens", "files", "pairs", "messages")
ERASABLE_COMPACTION = {
    "cleanup.policy": "compact",
    "segment.ms": str(3600 * 1000),
    "max.compaction.lag.ms": str(DAY_MS),
    "delete.retention.ms": str(DAY_MS),
}


# The faust tables of streams/app.py; their changelogs are the workers' durable state.
TABLES = (
    "identities",
    "templates",
    "tokens",
    "files",
    "pairs",
    "messages",
    "data-keys",
    "challenge-uses",
)


async def read_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record (key, value) of a topic, from the beginning to the end offsets seen at
    the start: what an operator's replay or audit tool, the benchmark and the tests read."""
    consumer = AIOKafkaConsumer(**kafka_client_kwargs(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = await _read_to(consumer, await consumer.end_offsets(partitions))
        return [(r.key, r.value) for r in records]
    finally:
        await consumer.stop()


async def read_range(
    bootstrap: str, topic: str, partition: int, first: int, last: int, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records at offsets `first` to `last` of one partition (fewer if some are no
    longer on the log): for an agent whose stream skipped them (streams/faust_fixes.py)."""
    consumer = AIOKafkaConsumer(**kafka_client_kwargs(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, first)
        deadline = asyncio.get_running_loop().time() + timeout_s
        records = await _read_to(consumer, {tp: last + 1}, deadline)
        return [r for r in records if first <= r.offset <= last]
    finally:
        await consumer.stop()


async def _read_to(
    consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int], deadline: float = math.inf
) -> list[ConsumerRecord[bytes, bytes]]:
    """What an assigned consumer fetches until each partition's position reaches its end
    offset (or the deadline passes)."""
    loop = asyncio.get_running_loop()
    out: list[ConsumerRecord[bytes, bytes]] = []
    while [tp for tp in ends if await consumer.position(tp) < ends[tp]]:
        if loop.time() > deadline:
            break
        for records in (await consumer.getmany(*ends, timeout_ms=1000)).values():
            out.extend(records)
    return out
