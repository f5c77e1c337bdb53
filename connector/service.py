"""What the Connector does for one identity: the handlers (`connector.handlers`) over its
records (`connector.repositories`), put together, and the mailbox entries dispatched to
them. The REST API (`connector.api`) and the mailbox consumer call in here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connector.backbone_client import BackboneError, DeviceSession
from connector.crypto import DecryptionFailed
from connector.handlers.common import Context, LocalKeys
from connector.handlers.files import Files
from connector.handlers.messages import Messages
from connector.handlers.relationships import Relationships
from connector.handlers.templates import Templates
from connector.identities import LocalIdentity
from connector.keystore import Keystore
from connector.repositories import LocalData
from connector.store import SqliteStore
from connector.webhooks import Outbox, WebhookTarget

log = logging.getLogger("connector.service")

# Mailbox entries that mean "this relationship changed: ask the backbone how".
RELATIONSHIP_CHANGES = frozenset(
    {
        "RelationshipStatusChanged",
        "RelationshipReactivationRequested",
        "RelationshipReactivationCompleted",
        "RelationshipDecomposedByPeer",
    }
)


@dataclass
class ConnectorService:
    identity: LocalIdentity
    session: DeviceSession
    store: SqliteStore
    keystore: Keystore
    outbox: Outbox
    targets: list[WebhookTarget]
    on_event: Callable[[], None] = lambda: None  # told after an event entered the outbox
    templates: Templates = field(init=False)
    files: Files = field(init=False)
    relationships: Relationships = field(init=False)
    messages: Messages = field(init=False)

    def __post_init__(self) -> None:
        # `on_event` is looked up on each event: the server sets it after construction.
        data = LocalData(
            self.store.database, self.address, self.outbox, self.targets, lambda: self.on_event()
        )
        ctx = Context(self.identity, self.session, LocalKeys(self.keystore), data)
        self.templates = Templates(ctx)
        self.files = Files(ctx)
        self.relationships = Relationships(ctx)
        self.messages = Messages(ctx, self.files)

    @property
    def address(self) -> str:
        return self.identity.address

    async def handle_entry(self, entry: dict[str, Any]) -> None:
        """One mailbox entry. Idempotent: the mailbox consumer may hand it in twice."""
        kind, payload = entry["type"], entry["payload"]
        try:
            if kind == "MessageReceived":
                await self.messages.received(entry["index"], payload)
            elif kind in RELATIONSHIP_CHANGES:
                await self.relationships.changed(payload["relationshipId"])
        except DecryptionFailed as exc:
            # Not ours to fix and retrying cannot help: keep going, but say so.
            log.error(
                "a mailbox entry could not be opened; skipped",
                extra={"index": entry["index"], "type": kind, "error": str(exc)},
            )
        except BackboneError as exc:
            if exc.status != 404:
                raise  # transient: the consumer retries this entry
            log.warning(
                "a mailbox entry refers to something gone; skipped",
                extra={"index": entry["index"], "type": kind},
            )
