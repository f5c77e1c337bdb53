"""The faust-streaming app: one decider agent per aggregate type, and the projection.

    identity-commands     --identity_decider-->     events
    template-commands     --template_decider-->     events (+ OpenRelationship)
    token-commands        --token_decider-->        events
    file-commands         --file_decider-->         events
    message-commands      --message_decider-->      events
    relationship-commands --relationship_decider--> events (+ ReleaseAllocation)
    events --projector--> Cassandra, then replies and mailbox-entries
    mailbox-entries --mailbox_sequencer (own consumer)--> Cassandra, then mailbox-sequenced

This module is the wiring: it registers the topics, tables, agents and tasks on the faust
app (faust needs them at import time in the worker's module) and hands each its
collaborators. The rules live in the pure `domain/*_decider.py` modules, the loop around
them in `streams/deciding.py`, each agent's steps in `streams/agent_steps.py`, the
projection in `streams/projector.py`, the read models in `streams/readmodels.py`.

Run with `backbone worker`. Provisioning must have created the topics first: a faust worker
ignores a source topic that does not exist when it starts.
"""

from __future__ import annotations

import functools
from typing import Any

import faust
from prometheus_client import start_http_server

from backbone import logs
from backbone.connections import faust_app_kwargs
from backbone.deletion_policy import DeletionSettings
from backbone.security.logcrypto import MasterKey
from backbone.settings import BackboneSettings
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames
from streams import table_codec
from streams.agent_steps import Decide, IdentitySteps, RelationshipRequest, Step, handle_each
from streams.aggregates import aggregates
from streams.data_keys import DataKeys
from streams.deciding import Runtime, set_key_loader
from streams.deletion_wiring import Deletions
from streams.faust_fixes import GroupPositions, gap_free
from streams.keyspace_writers import ActiveProjection
from streams.projector import Projector
from streams.recovery_watch import RecoveryWatch, refetch_lost_changelog_records
from streams.sequencer_task import run_mailbox_sequencer
from streams.state_tables import sealed_table
from streams.worker_keyspace import WorkerKeyspace

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


cassandra = WorkerKeyspace(settings.cluster)


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

# Decider state, one sealed table per aggregate type (streams/state_tables.py).
_state_table = functools.partial(
    sealed_table,
    app,
    settings.app_id,
    partitions=settings.partitions,
    codec=table_codec.register(settings.master_key_b64),
)

# Wrapped data keys, readable by every worker (a projection may run anywhere): see
# streams/data_keys.py. Deleting a key from this table's changelog is crypto-shredding.
data_keys = app.GlobalTable("data-keys", default=None, partitions=settings.partitions)
keys = DataKeys(master, data_keys, cassandra.session)

envelopes = EnvelopeCodec(settings.master_key_b64, keys.get)
runtime = Runtime(envelopes, events, replies, keys.remember)
set_key_loader(keys.load)

AGGREGATES = aggregates(_state_table)
# The challenge gate (domain/challenge_decider.py): which request used each challenge id.
# One small entry per identity creation or device registration.
CHALLENGE_USES = _state_table("challenge-uses")

# Identity deletion: the final step and the timer that finds due ones
# (streams/deletion_wiring.py).
_deletion = DeletionSettings.from_env()
DELETIONS = Deletions(
    _deletion,
    AGGREGATES.identities,
    keys,
    cassandra.session,
    envelopes,
    events,
    identity_commands,
    {
        "token": token_commands,
        "template": template_commands,
        "file": file_commands,
        "message": message_commands,
        "pair": relationship_commands,
    },
)


@app.timer(_deletion.poll_s)  # type: ignore[untyped-decorator]
async def _due_deletions() -> None:
    await DELETIONS.poll()


def _decide_agent(topic: faust.TopicT, name: str, step: Step) -> Any:
    """Registers the agent `name` that runs `step` on each command of `topic`, one actor per
    partition, reading the records gap-free (streams/faust_fixes.py)."""

    async def agent(stream: faust.StreamT[bytes]) -> None:
        await handle_each(gap_free(app, positions, stream), envelopes, step)

    # Named as a decorated `async def <name>` in this module would be: faust names the agent
    # and labels its log lines from the function.
    agent.__name__ = agent.__qualname__ = name
    return app.agent(topic, isolated_partitions=True)(agent)


_relationship_request = RelationshipRequest(
    runtime, AGGREGATES.templates, AGGREGATES.pairs, template_commands, relationship_commands
)
identity_agent = _decide_agent(
    identity_commands,
    "identity_agent",
    IdentitySteps(
        runtime, AGGREGATES.identities, CHALLENGE_USES, identity_commands, DELETIONS.final.run
    ),
)
message_agent = _decide_agent(
    message_commands, "message_agent", Decide(runtime, AGGREGATES.messages)
)
token_agent = _decide_agent(token_commands, "token_agent", Decide(runtime, AGGREGATES.tokens))
file_agent = _decide_agent(file_commands, "file_agent", Decide(runtime, AGGREGATES.files))
template_agent = _decide_agent(
    template_commands, "template_agent", _relationship_request.at_template
)
relationship_agent = _decide_agent(
    relationship_commands, "relationship_agent", _relationship_request.at_pair
)


# The projection (streams/projector.py), on whichever keyspace is active.
PROJECTOR = Projector(envelopes, replies, mailbox_entries)


@app.agent(events, isolated_partitions=True)
async def projector(stream: faust.StreamT[bytes]) -> None:
    projections = ActiveProjection(await cassandra.active(), settings.retention_s)
    await PROJECTOR.run(gap_free(app, positions, stream), projections)


@app.task  # type: ignore[untyped-decorator]
async def mailbox_sequencer() -> None:
    """Numbers each identity's entries 1, 2, 3 … (streams/mailbox_sequencer.py), then tells
    the API processes (streams/sequencer_task.py)."""
    await run_mailbox_sequencer(
        settings, names.mailbox_entries, mailbox_sequenced, envelopes, await cassandra.active()
    )


@app.task  # type: ignore[untyped-decorator]
async def serve_metrics() -> None:
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
