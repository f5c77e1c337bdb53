"""Identity deletion in the workers: the final step at the end of a grace period
runs in the identity's agent, every worker polls for due ones (streams/deletion_final.py),
and every other aggregate forgets the deleted identity when told to."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

import faust
from cassandra.cluster import Session

from backbone.deletion_policy import DeletionSettings
from domain.deletion_forget import forget
from store.envelopes import EnvelopeCodec, Opened
from streams.data_keys import DataKeys
from streams.deciding import Decider
from streams.deletion_final import DueDeletions, FinalDeletion
from streams.sending import send_durably

log = logging.getLogger("backbone.streams")


def forgot(spec: Decider, key: str, command: Opened) -> bool:
    """`ForgetIdentity` is no decision; the aggregate's state drops or anonymizes the
    deleted identity (domain/deletion_forget.py). True when `command` was that."""
    if command.name != "ForgetIdentity":
        return False
    forget(spec.table, key, command.body)
    return True


class Deletions:
    def __init__(
        self,
        settings: DeletionSettings,
        identities: Decider,
        keys: DataKeys,
        session: Callable[[], Awaitable[Session]],
        envelopes: EnvelopeCodec,
        events: faust.TopicT,
        identity_commands: faust.TopicT,
        forgetting: Mapping[str, faust.TopicT],  # aggregate type -> its command topic
    ) -> None:
        self._keys = keys
        self.final = FinalDeletion(
            identities.table,
            keys,
            session,
            envelopes,
            lambda key, value: send_durably(events, key.encode(), value),
            settings.step_pause_s,
            lambda kind, key, value: send_durably(forgetting[kind], key.encode(), value),
        )
        self.due = DueDeletions(
            session,
            envelopes,
            lambda key, value: send_durably(identity_commands, key.encode(), value),
            settings,
            owner=f"{socket.gethostname()}/{os.getpid()}",
        )

    async def poll(self) -> None:
        """One tick of the worker's timer: sends the final command of the deletions due."""
        self._keys.forget_shredded()  # keys shredded on another worker leave this one's too
        try:
            await self.due.poll()
        except Exception as exc:  # Cassandra or Kafka away: the next tick tries again
            log.warning("polling due deletions failed", extra={"error": type(exc).__name__})
