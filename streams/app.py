"""The faust-streaming app: one decider agent per aggregate type, and the projection.

    identity-commands     --identity_decider-->     events
    template-commands     --template_decider-->     events (+ OpenRelationship)
    token-commands        --token_decider-->        events
    file-commands         --file_decider-->         events
    relationship-commands --relationship_decider--> events (+ ReleaseAllocation)
    events --projector--> Cassandra, then replies and mailbox-entries
    mailbox-entries --mailbox_sequencer (own consumer)--> Cassandra, then mailbox-sequenced

The rules live in the pure `*_decider.py` modules, the loop around them in
`streams/deciding.py`, the read models in `streams/readmodels.py`. Run with `backbone
worker`. Provisioning must have created the topics first: a faust worker ignores a source
topic that does not exist when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import start_http_server

from backbone import logs
from backbone.connections import faust_app_kwargs
from backbone.deletion_policy import DeletionSettings
from backbone.replay.pointer import ActiveKeyspace
from backbone.security.logcrypto import MasterKey
from backbone.settings import BackboneSettings
from domain import (
    challenge_decider,
    file_decider,
    identity_decider,
    message_decider,
    relationship_choreography,
    relationship_decider,
    template_decider,
    token_decider,
)
from domain.decision import Rejection
from domain.deletion_forget import forget
from store.cassandra import connect
from store.envelopes import EnvelopeCodec, Opened
from store.topics import TopicNames
from streams import table_codec
from streams.data_keys import DataKeys
from streams.deciding import (
    Decider,
    Runtime,
    open_waiting_for_key,
    set_key_loader,
)
from streams.deletion_final import DueDeletions, FinalDeletion
from streams.faust_fixes import GroupPositions, gap_free
from streams.keyspace_writers import ActiveProjection
from streams.projector import Projector
from streams.recovery_watch import RecoveryWatch, refetch_lost_changelog_records
from streams.sending import send_durably
from streams.sequencer_task import run_mailbox_sequencer

log = logging.getLogger("backbone.streams")

settings = BackboneSettings.from_env()
names = TopicNames(settings.cluster.topic_prefix)
master = MasterKey.from_base64(settings.master_key_b64)

app = faust.App(
    settings.app_id,
    **faust_app_kwargs(settings.cluster),  # broker and its credentials
    store="memory://",  # tables recover from their changelog topics on start
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.cluster.kafka_replication_factor,
    web_enabled=False,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    logging_config=logs.config(),
    broker_session_timeout=settings.worker_session_timeout_s,
    broker_heartbeat_interval=max(1.0, settings.worker_session_timeout_s / 10),
)

# Where the workers' group resumes a partition: the start an agent's records are checked
# against (streams/faust_fixes.py). One admin connection per worker, made on first use.
positions = GroupPositions(settings.cluster.kafka_bootstrap, settings.app_id)


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
async def _close_positions(sender: Any, *_: Any, signal: Any, **__: Any) -> None:
    await positions.close()


# A table recovery that waits for changelog records faust fetched and dropped would hold
# the worker's partitions for good: fetch them again (streams/recovery_watch.py).
_recovery_watch = RecoveryWatch()


@app.timer(1.0)  # type: ignore[untyped-decorator]
async def _watch_recovery() -> None:
    await refetch_lost_changelog_records(app, _recovery_watch)


# One Cassandra session per worker process, shared by every actor: each agent runs one
# actor per assigned partition (`isolated_partitions`), so that partitions are processed
# concurrently while each keeps its order.
_shared: dict[str, Any] = {}
_shared_lock = asyncio.Lock()


async def _keyspace() -> ActiveKeyspace:
    # Keyspace switch-over (backbone/replay/pointer.py): the session follows the pointer,
    # and every Cassandra write waits while a switch holds the writers.
    async with _shared_lock:
        if "keyspace" not in _shared:
            cluster, session = await asyncio.to_thread(
                connect, settings.cluster, settings.cluster.keyspace
            )
            keyspace = await ActiveKeyspace.start(
                settings.cluster.keyspace, "worker", cluster, session
            )
            _shared["watch"] = asyncio.ensure_future(keyspace.watch())
            _shared["keyspace"] = keyspace
    active: ActiveKeyspace = _shared["keyspace"]
    return active


async def _cassandra() -> Any:
    keyspace = await _keyspace()
    await keyspace.ready()
    return keyspace.session


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


identity_commands = _raw_topic(names.identity_commands)
template_commands = _raw_topic(names.template_commands)
token_commands = _raw_topic(names.token_commands)
file_commands = _raw_topic(names.file_commands)
relationship_commands = _raw_topic(names.relationship_commands)
events = _raw_topic(names.events)
replies = _raw_topic(names.replies)
mailbox_entries = _raw_topic(names.mailbox_entries)
mailbox_sequenced = _raw_topic(names.mailbox_sequenced)
message_commands = _raw_topic(names.message_commands)

# Decider state, one table per aggregate type, keyed like its command topic (one partition,
# one writer). Changelogs hold addresses, so their values are sealed like events. faust
# takes a table's serializer from its value type only, so the changelog topic (which
# recovery decodes with) and the table's own writes are both given the codec here.
_sealed = table_codec.register(settings.master_key_b64)


def _state_table(name: str) -> Any:
    table: Any = app.Table(
        name,
        default=None,
        partitions=settings.partitions,
        changelog_topic=app.topic(
            f"{settings.app_id}-{name}-changelog",
            key_serializer="json",
            value_serializer=_sealed,
            partitions=settings.partitions,
            compacting=True,
            acks=False,
            internal=True,
        ),
    )
    table.value_serializer = _sealed
    return table


# Wrapped data keys, readable by every worker (a projection may run anywhere): see
# streams/data_keys.py. Deleting a key from this table's changelog is crypto-shredding.
data_keys = app.GlobalTable("data-keys", default=None, partitions=settings.partitions)
keys = DataKeys(master, data_keys, _cassandra)

envelopes = EnvelopeCodec(settings.master_key_b64, keys.get)
runtime = Runtime(envelopes, events, replies, keys.remember)
set_key_loader(keys.load)

IDENTITIES = Decider(
    "identity",
    _state_table("identities"),
    identity_decider.IdentityState.from_dict,
    identity_decider.decide,
    identity_decider.evolve,
    sealed_for=lambda state, cmd: cmd.body["address"],
    created_by={"CreateIdentity", "AddDevice"},
)
TEMPLATES = Decider(
    "template",
    _state_table("templates"),
    template_decider.TemplateState.from_dict,
    template_decider.decide,
    template_decider.evolve,
    sealed_for=lambda state, cmd: state.owner or cmd.body["owner"],
    created_by={"CreateTemplate"},
)
TOKENS = Decider(
    "token",
    _state_table("tokens"),
    token_decider.TokenState.from_dict,
    token_decider.decide,
    token_decider.evolve,
    sealed_for=lambda state, cmd: state.owner or cmd.body["owner"],
    created_by={"CreateToken"},
)
FILES = Decider(
    "file",
    _state_table("files"),
    file_decider.FileState.from_dict,
    file_decider.decide,
    file_decider.evolve,
    sealed_for=lambda state, cmd: state.owner or cmd.body["owner"],
    created_by={"UploadFile"},
)
MESSAGES = Decider(
    "message",
    _state_table("messages"),
    message_decider.MessageState.from_dict,
    message_decider.decide,
    message_decider.evolve,
    # A receipt is the recipient's; a SendMessage (still decided when read from an older
    # log) the sender's.
    sealed_for=lambda state, cmd: (
        cmd.body["sender"] if cmd.name == "SendMessage" else cmd.body["recipient"]
    ),
    created_by={"SendMessage"},
)
PAIRS = Decider(
    "pair",
    _state_table("pairs"),
    relationship_decider.PairState.from_dict,
    relationship_decider.decide,
    relationship_decider.evolve,
    sealed_for=lambda state, cmd: cmd.body.get("actor") or cmd.body["from_address"],
    created_by={"OpenRelationship"},
    ok_status=200,
)


# Identity deletion (issue 22): the final step at the end of a grace period runs in the
# identity's agent; every worker polls for due ones (streams/deletion_final.py).
_deletion = DeletionSettings.from_env()
_FORGETTING_TOPICS = {
    "token": token_commands,
    "template": template_commands,
    "file": file_commands,
    "message": message_commands,
    "pair": relationship_commands,
}
FINAL_DELETION = FinalDeletion(
    IDENTITIES.table,
    keys,
    _cassandra,
    envelopes,
    lambda key, value: send_durably(events, key.encode(), value),
    _deletion.step_pause_s,
    lambda kind, key, value: send_durably(_FORGETTING_TOPICS[kind], key.encode(), value),
)
DUE_DELETIONS = DueDeletions(
    _cassandra,
    envelopes,
    lambda key, value: send_durably(identity_commands, key.encode(), value),
    _deletion,
    owner=f"{socket.gethostname()}/{os.getpid()}",
)


@app.timer(_deletion.poll_s)  # type: ignore[untyped-decorator]
async def _due_deletions() -> None:
    keys.forget_shredded()  # keys shredded on another worker leave this one's memory too
    try:
        await DUE_DELETIONS.poll()
    except Exception as exc:  # Cassandra or Kafka away: the next tick tries again
        log.warning("polling due deletions failed", extra={"error": type(exc).__name__})


def _forgot(spec: Decider, key: str, command: Opened) -> bool:
    """Issue 22: `ForgetIdentity` is no decision; the aggregate's state drops or anonymizes
    the deleted identity (domain/deletion_forget.py)."""
    if command.name != "ForgetIdentity":
        return False
    forget(spec.table, key, command.body)
    return True


async def _commands(stream: faust.StreamT[bytes]) -> AsyncIterator[tuple[str, Opened]]:
    async for key, raw in gap_free(app, positions, stream):
        command = await open_waiting_for_key(envelopes, raw) if raw is not None else None
        if command is not None and key is not None:
            yield key.decode(), command


# The challenge gate (domain/challenge_decider.py): which request used each challenge id.
# One small entry per identity creation or device registration.
CHALLENGE_USES = _state_table("challenge-uses")
_CHALLENGED = frozenset({"CreateIdentity", "AddDevice"})


@app.agent(identity_commands, isolated_partitions=True)
async def identity_agent(stream: faust.StreamT[bytes]) -> None:
    """A command that proves a key with a challenge arrives under the challenge's key first:
    the gate lets it through once, then it goes on to the identity's key."""
    async for key, command in _commands(stream):
        body = command.body
        if command.name in _CHALLENGED and key == envelopes.aggregate_key(
            "challenge", body["challenge_id"]
        ):
            corr = command.envelope["correlation_id"]
            outcome = challenge_decider.decide(
                CHALLENGE_USES.get(key), corr, body, datetime.now(UTC)
            )
            if isinstance(outcome, Rejection):
                await runtime.replies.send(
                    key=corr.encode(), value=runtime.reply(corr, outcome.status, outcome)
                )
                continue
            CHALLENGE_USES[key] = outcome
            await runtime.forward(
                identity_commands,
                envelopes.aggregate_key("identity", body["address"]),
                command.name,
                body,
                command,
            )
            continue
        if command.name == "FinishIdentityDeletion":
            await FINAL_DELETION.run(key, command)
            continue
        await runtime.decide(IDENTITIES, key, command)


@app.agent(message_commands, isolated_partitions=True)
async def message_agent(stream: faust.StreamT[bytes]) -> None:
    async for key, command in _commands(stream):
        if _forgot(MESSAGES, key, command):
            continue
        await runtime.decide(MESSAGES, key, command)


@app.agent(token_commands, isolated_partitions=True)
async def token_agent(stream: faust.StreamT[bytes]) -> None:
    async for key, command in _commands(stream):
        if _forgot(TOKENS, key, command):
            continue
        await runtime.decide(TOKENS, key, command)


@app.agent(file_commands, isolated_partitions=True)
async def file_agent(stream: faust.StreamT[bytes]) -> None:
    async for key, command in _commands(stream):
        if _forgot(FILES, key, command):
            continue
        await runtime.decide(FILES, key, command)


@app.agent(template_commands, isolated_partitions=True)
async def template_agent(stream: faust.StreamT[bytes]) -> None:
    """A relationship request is allocated here first, then opened by the pair's decider,
    which answers the API; a refused opening gives the allocation back."""
    async for key, command in _commands(stream):
        if _forgot(TEMPLATES, key, command):
            continue
        forward = command.name == "RequestRelationship"
        outcome = await runtime.decide(TEMPLATES, key, command, reply=not forward)
        if forward and outcome is not None:
            owner = TEMPLATES.load(TEMPLATES.table.get(key)).owner
            pair, opening = relationship_choreography.opening(command.body, owner)
            await runtime.forward(
                relationship_commands,
                envelopes.aggregate_key("pair", pair),
                "OpenRelationship",
                opening,
                command,
            )


@app.agent(relationship_commands, isolated_partitions=True)
async def relationship_agent(stream: faust.StreamT[bytes]) -> None:
    async for key, command in _commands(stream):
        if _forgot(PAIRS, key, command):
            continue
        outcome = await runtime.decide(PAIRS, key, command)
        if command.name == "OpenRelationship" and outcome is None:
            release = relationship_choreography.release(command.body)
            await runtime.forward(
                template_commands,
                envelopes.aggregate_key("template", release["template_id"]),
                "ReleaseAllocation",
                release,
                command,
            )


# The projection (streams/projector.py), on whichever keyspace is active.
PROJECTOR = Projector(envelopes, replies, mailbox_entries)


@app.agent(events, isolated_partitions=True)
async def projector(stream: faust.StreamT[bytes]) -> None:
    projections = ActiveProjection(await _keyspace(), settings.retention_s)
    await PROJECTOR.run(gap_free(app, positions, stream), projections)


@app.task  # type: ignore[untyped-decorator]
async def mailbox_sequencer() -> None:
    """Numbers each identity's entries 1, 2, 3 … (streams/mailbox_sequencer.py), then tells
    the API processes (streams/sequencer_task.py)."""
    await run_mailbox_sequencer(
        settings, names.mailbox_entries, mailbox_sequenced, envelopes, await _keyspace()
    )


@app.task  # type: ignore[untyped-decorator]
async def serve_metrics() -> None:
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
