"""The read side's queries: one module per read model, each naming the tables it reads and
the projection in the workers that writes them (streams/*_readmodels.py, which also create
the tables). The API reads Cassandra only through here, in domain-named methods that
return this package's records, never driver rows; statements are prepared once per
session.

Modules, the tables they read, and the projection that writes them:
- `identities`: identities, devices, devices_by_username (streams/readmodels.py);
- `sharing`: tokens, templates and their by-owner indexes, files
  (streams/sharing_readmodels.py), and file_chunks (the API, before the upload's command);
- `relationships`: relationships, relationships_by_identity, relationship_peers,
  relationship_audit (streams/sharing_readmodels.py);
- `messages`: messages, message_recipients, messages_by_identity
  (streams/message_readmodels.py);
- `mailbox`: mailbox (streams/mailbox_sequencer.py), mailbox_cursors
  (streams/message_readmodels.py);
- `sync`: sync_runs, sync_errors, datawallet_modifications, datawallets
  (streams/sync_readmodels.py);
- `deletion`: deletion_processes, peer_deletions, deleted_usernames
  (streams/deletion_readmodels.py);
- `idempotency`: idempotency_keys (streams/readmodels.py).

It imports `store/` (and may import `domain/`), never the API or the workers
(tests/unit/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from store.readmodels.base import Queries, SessionOf
from store.readmodels.deletion import DeletionReads
from store.readmodels.idempotency import IdempotencyReads
from store.readmodels.identities import IdentityReads
from store.readmodels.mailbox import MailboxReads
from store.readmodels.messages import MessageReads
from store.readmodels.relationships import RelationshipReads
from store.readmodels.sharing import Files, SharedObjects, Template, Token, templates, tokens
from store.readmodels.sync import SyncReads


class Store(Queries):
    async def reachable(self) -> None:
        """Raises when Cassandra does not answer (the readiness check)."""
        await self._run("SELECT release_version FROM system.local")


@dataclass(frozen=True)
class ReadStore:
    """Every read model's queries over one session provider."""

    identities: IdentityReads
    tokens: SharedObjects[Token]
    templates: SharedObjects[Template]
    files: Files
    relationships: RelationshipReads
    messages: MessageReads
    mailbox: MailboxReads
    sync: SyncReads
    deletion: DeletionReads
    idempotency: IdempotencyReads
    store: Store

    @classmethod
    def over(cls, session_of: SessionOf) -> ReadStore:
        """`session_of` is asked for the session at each query (it may change while the
        process runs: a keyspace switch)."""
        return cls(
            identities=IdentityReads(session_of),
            tokens=tokens(session_of),
            templates=templates(session_of),
            files=Files(session_of),
            relationships=RelationshipReads(session_of),
            messages=MessageReads(session_of),
            mailbox=MailboxReads(session_of),
            sync=SyncReads(session_of),
            deletion=DeletionReads(session_of),
            idempotency=IdempotencyReads(session_of),
            store=Store(session_of),
        )
