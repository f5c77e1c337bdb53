"""Commands to Kafka, outcomes back: request-reply bounded by a timeout.

Each API process reads every partition of the replies topic (no consumer group) from the
end it saw at start-up, and hands each reply to the request waiting for its correlation id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from api import errors, metrics
from api.error_status import UNEXPECTED, refusal_status, success_status
from api.errors import ApiError, unavailable
from api.idempotency import Idempotent
from api.topic_tail import TopicTail
from backbone.connections import kafka_client_kwargs
from store.envelopes import EnvelopeCodec, derived_event_id

log = logging.getLogger("backbone.api.bus")


@dataclass(frozen=True)
class Outcome:
    status: int
    resource: dict[str, Any] | None


class CommandBus:
    def __init__(
        self, bootstrap: str, replies_topic: str, envelopes: EnvelopeCodec, timeout_s: float
    ) -> None:
        self.bootstrap = bootstrap
        self.replies_topic = replies_topic
        self.envelopes = envelopes
        self.timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._tail = TopicTail(bootstrap, replies_topic, self._reply, "replies")

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **kafka_client_kwargs(self.bootstrap), acks="all", enable_idempotence=True, linger_ms=1
        )
        await self._producer.start()
        await self._tail.start()

    async def stop(self) -> None:
        await self._tail.stop()
        if self._producer:
            await self._producer.stop()

    def _reply(self, record: Any) -> None:
        # While the broker is away the tail waits; waiting requests time out (503).
        fut = self._waiting.get(record.key.decode()) if record.key else None
        if fut is None or fut.done():
            return  # another API process's request
        try:
            fut.set_result(self.envelopes.open(record.value).body)
        except Exception as exc:  # a reply we cannot read is a failed request
            fut.set_exception(exc)

    async def send(
        self,
        topic: str,
        aggregate_key: str,
        name: str,
        body: dict[str, Any],
        idempotent: Idempotent | None = None,
    ) -> Outcome:
        """Append the command and wait for its outcome; 4xx outcomes raise ApiError.

        With `idempotent`, the command carries the key's correlation id, so a retry of the
        same request is answered with the first outcome (api/idempotency.py)."""
        corr = idempotent.correlation_id if idempotent is not None else str(uuid.uuid4())
        value = self.envelopes.seal(name, body, aggregate_key=aggregate_key, correlation_id=corr)
        return await self._measured(name, topic, aggregate_key, [value], corr, success_status(name))

    async def append(
        self,
        topic: str,
        aggregate_key: str,
        name: str,
        body: dict[str, Any],
        data_key_id: str,
        status: int,
        idempotent: Idempotent | None = None,
    ) -> Outcome:
        """Append an event the API has validated itself (a fact, no decider needed), and its
        reply right behind it on the same partition: the projector forwards the reply once
        it has written the event, so a 2xx still means the client can read its own write.

        With `idempotent`, a repeat appends the same event id, which the projection and the
        mailbox sequencer recognise, and is answered the same."""
        corr, event = self._event(aggregate_key, name, body, data_key_id, idempotent)
        reply = self.envelopes.reply(corr, status)
        return await self._measured(name, topic, aggregate_key, [event, reply], corr, status)

    async def append_durable(
        self,
        topic: str,
        aggregate_key: str,
        name: str,
        body: dict[str, Any],
        data_key_id: str,
        idempotent: Idempotent | None = None,
    ) -> None:
        """Append an event and return once the log has it (every in-sync replica, acks=all),
        without waiting for the projector: the earliest point at which the event is as
        durable as it will ever be. No reply record is written, so the event is all the
        write costs on the log; what the writer cannot have is reading its own write at
        once (it learns of the projection from its mailbox instead)."""
        _, event = self._event(aggregate_key, name, body, data_key_id, idempotent)
        started = time.monotonic()
        errors.note_command_sent()
        try:
            await asyncio.wait_for(
                self._produce(topic, aggregate_key.encode(), [event]), timeout=self.timeout_s
            )
        except (KafkaError, TimeoutError) as exc:
            metrics.COMMANDS.labels(name, "unavailable").inc()
            log.warning("event %s not appended: %s", name, type(exc).__name__)
            raise unavailable(
                "the event log did not confirm the write in time; it may still be "
                "applied: repeat it with the same Idempotency-Key, or read before repeating"
            ) from exc
        metrics.COMMANDS.labels(name, "ok").inc()
        metrics.COMMAND_SECONDS.labels(name).observe(time.monotonic() - started)

    def _event(
        self,
        aggregate_key: str,
        name: str,
        body: dict[str, Any],
        data_key_id: str,
        idempotent: Idempotent | None,
    ) -> tuple[str, bytes]:
        """The correlation id and the sealed event of an append (a keyed repeat gets the
        same event id, which the projection and the sequencer recognise)."""
        corr = idempotent.correlation_id if idempotent is not None else str(uuid.uuid4())
        event_id = derived_event_id(corr, 0) if idempotent is not None else None
        event = self.envelopes.seal(
            name,
            body,
            aggregate_key=aggregate_key,
            correlation_id=corr,
            data_key_id=data_key_id,
            aggregate_version=1,
            event_id=event_id,
        )
        return corr, event

    async def _measured(
        self,
        name: str,
        topic: str,
        aggregate_key: str,
        values: list[bytes],
        corr: str,
        status: int,
    ) -> Outcome:
        """Append, wait for the reply, and answer an accepted one with `status`."""
        assert self._producer is not None, "bus not started"
        started = time.monotonic()
        try:
            reply = await self._produce_and_wait(topic, aggregate_key, values, name, corr)
            outcome = answer(reply, status)
        except ApiError as exc:
            metrics.COMMANDS.labels(name, "unavailable" if exc.status == 503 else "rejected").inc()
            raise
        metrics.COMMANDS.labels(name, "ok").inc()
        metrics.COMMAND_SECONDS.labels(name).observe(time.monotonic() - started)
        return outcome

    async def _produce(self, topic: str, key: bytes, values: list[bytes]) -> None:
        assert self._producer is not None
        # Sent together, acknowledged together; one partition keeps their order.
        sent = [await self._producer.send(topic, v, key=key) for v in values]
        await asyncio.gather(*sent)

    async def _produce_and_wait(
        self, topic: str, aggregate_key: str, values: list[bytes], name: str, corr: str
    ) -> dict[str, Any]:
        assert self._producer is not None
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if corr in self._waiting:  # the same keyed request twice at once: one waits
            raise ApiError(
                409,
                "error.platform.requestInProgress",
                "a request with this Idempotency-Key is still being processed; retry later",
                {"Retry-After": "1"},
            )
        self._waiting[corr] = fut
        errors.note_command_sent()
        try:
            try:
                await asyncio.wait_for(
                    self._produce(topic, aggregate_key.encode(), values), timeout=self.timeout_s
                )
            except (KafkaError, TimeoutError) as exc:
                # Once handed to the producer, a record can still go out after we gave up
                # on it (measured: 8 of 12 such commands were applied): never "not applied".
                log.warning("command %s not appended: %s", name, type(exc).__name__)
                raise unavailable(
                    "the event log did not confirm the command in time; it may still be "
                    "applied: repeat it with the same Idempotency-Key, or read before repeating"
                ) from exc
            try:
                reply = await asyncio.wait_for(fut, timeout=self.timeout_s)
            except TimeoutError as exc:
                # The command is on the log and may still succeed: say so, do not guess.
                raise unavailable(
                    "the command was accepted but its outcome is not known yet; repeat it "
                    "with the same Idempotency-Key, or read the resource before repeating"
                ) from exc
        finally:
            self._waiting.pop(corr, None)
        return reply


def answer(reply: dict[str, Any], status: int) -> Outcome:
    """A worker's reply as the client's answer: `status` when accepted, the catalogue's
    status for the refusal's code otherwise. The status a reply record carries (written
    by workers before the API chose it) is not read."""
    if not reply["ok"]:
        code = reply["error_code"] or UNEXPECTED
        raise ApiError(refusal_status(code), code, reply["error_message"] or "")
    resource = json.loads(reply["resource_json"]) if reply["resource_json"] else None
    return Outcome(status, resource)
