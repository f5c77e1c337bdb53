"""The faust-streaming app: the identity decider and the projection.

    identity-commands --identity_decider--> events --projector--> Cassandra, then replies

Each agent is a small loop; the rules live in streams/identity_decider.py and the read
models in streams/readmodels.py. Run with `backbone worker` (`faust -A streams.app worker`).
Provisioning (`backbone provision`) must have created the topics first: a faust worker
ignores a source topic that does not exist when it starts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import Counter, Histogram, start_http_server

from backbone import logs
from backbone.security.logcrypto import MasterKey, new_data_key
from backbone.settings import BackboneSettings
from streams import table_codec
from streams.cassandra_io import connect
from streams.envelopes import EnvelopeCodec, Opened
from streams.identity_decider import IdentityState, Rejection, decide, evolve
from streams.readmodels import IdentityProjection
from streams.topics import TopicNames

log = logging.getLogger("backbone.streams")

settings = BackboneSettings.from_env()
names = TopicNames(settings.cluster.topic_prefix)
master = MasterKey.from_base64(settings.master_key_b64)

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.cluster.kafka_bootstrap}",
    store="memory://",  # tables recover from their changelog topics on start
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    web_enabled=False,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    logging_config=logs.config(),
)

DECISIONS = Counter(
    "backbone_decider_commands_total",
    "Commands decided, by command and outcome",
    ["command", "outcome"],
)
DECIDER_LAG = Histogram(
    "backbone_decider_lag_seconds", "From a command's append to its decision", ["command"]
)
PROJECTION_LAG = Histogram(
    "backbone_projection_lag_seconds", "From an event's append to its read-model write", ["event"]
)
PROJECTION_RETRIES = Counter(
    "backbone_projection_retries_total", "Read-model writes retried after a Cassandra error"
)

# How long an event waits for its identity's data key to reach this worker's copy of the
# key table (written by the decider on another worker) before it is reported and skipped.
DATA_KEY_WAIT_S = 30.0
# How many recent command ids an identity remembers, to answer a redelivered command with
# its first outcome instead of deciding it again.
REMEMBERED_COMMANDS = 32


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


identity_commands = _raw_topic(names.identity_commands)
events = _raw_topic(names.events)
replies = _raw_topic(names.replies)

# Decider state per identity, keyed like identity-commands (one partition, one writer).
# Its changelog holds addresses and usernames, so its values are sealed like events. faust
# takes a table's serializer from its value type only, so the changelog topic (which
# recovery decodes with) and the table's own writes are both given the codec here.
_sealed = table_codec.register(settings.master_key_b64)
identities = app.Table(
    "identities",
    default=None,
    partitions=settings.partitions,
    changelog_topic=app.topic(
        f"{settings.app_id}-identities-changelog",
        key_serializer="json",
        value_serializer=_sealed,
        partitions=settings.partitions,
        compacting=True,
        acks=False,
        internal=True,
    ),
)
identities.value_serializer = _sealed  # type: ignore[attr-defined]
# Wrapped data keys, readable by every worker (a projection may run anywhere). The changelog
# is compacted and is where a replay finds the keys; deleting a key is crypto-shredding.
data_keys = app.GlobalTable("data-keys", default=None, partitions=settings.partitions)

_plain_keys: dict[str, bytes] = {}


def data_key(key_id: str) -> bytes:
    if key_id not in _plain_keys:
        wrapped = data_keys.get(key_id)
        if wrapped is None:
            raise KeyError(key_id)
        _plain_keys[key_id] = master.unwrap(base64.b64decode(wrapped), key_id)
    return _plain_keys[key_id]


envelopes = EnvelopeCodec(settings.master_key_b64, data_key)


async def _open_waiting_for_key(raw: bytes) -> Opened | None:
    deadline = time.monotonic() + DATA_KEY_WAIT_S
    while True:
        try:
            return envelopes.open(raw)
        except KeyError as missing:
            if time.monotonic() > deadline:
                log.error("no data key for a record; skipped", extra={"key_id": str(missing)})
                return None
            await asyncio.sleep(0.05)


def _reply(correlation_id: str, status: int, rejection: Rejection | None = None) -> bytes:
    return envelopes.seal(
        "Reply",
        {
            "correlation_id": correlation_id,
            "ok": rejection is None,
            "status": rejection.status if rejection else status,
            "error_code": rejection.code if rejection else None,
            "error_message": rejection.message if rejection else None,
            "resource_json": None,
        },
        aggregate_key=correlation_id,
        correlation_id=correlation_id,
    )


async def _send_acked(topic: faust.TopicT, key: str, value: bytes) -> None:
    # Waiting for the broker's ack before the table write below makes the order on a crash
    # "events without state" (the command is decided again and re-emits the same events, which
    # the projection absorbs), never "state without events" (events lost).
    pending = await topic.send(key=key.encode(), value=value)
    await pending


@app.agent(identity_commands)
async def identity_decider(stream: faust.StreamT[bytes]) -> None:
    async for key, raw in stream.items():
        command = await _open_waiting_for_key(raw)
        if command is not None:
            await decide_identity(key.decode(), command)


async def decide_identity(agg: str, cmd: Opened) -> None:
    corr = cmd.envelope["correlation_id"]
    stored: dict[str, Any] = identities.get(agg) or {}
    handled: dict[str, int] = dict(stored.get("handled", {}))
    status = 201 if cmd.name in ("CreateIdentity", "AddDevice") else 204
    DECIDER_LAG.labels(cmd.name).observe(_age(cmd))
    if corr in handled:  # redelivered after a crash: its events are on the log already
        await _send_acked(events, agg, _reply(corr, handled[corr]))
        DECISIONS.labels(cmd.name, "redelivered").inc()
        return
    state = IdentityState.from_dict(stored or None)
    try:
        outcome = decide(state, cmd.name, cmd.body, datetime.now(UTC))
    except Exception:
        log.exception("decider failed", extra={"command": cmd.name})
        outcome = Rejection(500, "error.platform.unexpected", "the command could not be decided")
    if isinstance(outcome, Rejection):
        DECISIONS.labels(cmd.name, "rejected").inc()
        await replies.send(key=corr.encode(), value=_reply(corr, outcome.status, outcome))
        return
    if not state.data_key_id:
        key_id = str(uuid.uuid4())
        fresh = new_data_key()
        data_keys[key_id] = base64.b64encode(master.wrap(fresh, key_id)).decode()
        _plain_keys[key_id] = fresh
        state.data_key_id = key_id
    for name, body in outcome:
        state = evolve(state, name, body)
        sealed = envelopes.seal(
            name, body, aggregate_key=agg, correlation_id=corr,
            data_key_id=state.data_key_id, aggregate_version=state.version,
            causation_id=cmd.envelope["event_id"],
        )  # fmt: skip
        await _send_acked(events, agg, sealed)
    handled[corr] = status
    identities[agg] = {
        **state.to_dict(),
        "handled": dict(list(handled.items())[-REMEMBERED_COMMANDS:]),
    }
    # The reply follows the events on the same partition, so the projector forwards it only
    # after it has written them: a client that got 2xx reads its own write.
    await events.send(key=agg.encode(), value=_reply(corr, status))
    DECISIONS.labels(cmd.name, "accepted").inc()


def _age(record: Opened) -> float:
    occurred: datetime = record.envelope["occurred_at"]
    return max(0.0, (datetime.now(UTC) - occurred).total_seconds())


@app.agent(events)
async def projector(stream: faust.StreamT[bytes]) -> None:
    _, session = await asyncio.to_thread(connect, settings.cluster, settings.cluster.keyspace)
    projection = IdentityProjection(session)
    async for _key, raw in stream.items():
        event = await _open_waiting_for_key(raw)
        if event is None:
            continue
        if event.name == "Reply":
            await replies.send(key=event.envelope["correlation_id"].encode(), value=raw)
            continue
        await _apply_until_written(projection, event)
        PROJECTION_LAG.labels(event.name).observe(_age(event))


async def _apply_until_written(projection: IdentityProjection, event: Opened) -> None:
    # A read model that skipped an event would be wrong forever; Cassandra being away for a
    # while only delays it. Writes are idempotent, so retrying is safe.
    delay = 0.1
    while True:
        try:
            await projection.apply(event)
            return
        except Exception as exc:
            PROJECTION_RETRIES.inc()
            log.warning(
                "read-model write failed; retrying",
                extra={"event": event.name, "error": type(exc).__name__, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@app.task  # type: ignore[untyped-decorator]
async def serve_metrics() -> None:
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
