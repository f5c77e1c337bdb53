"""What the Connector does for one identity: plaintext in and out, all crypto in here.

The wire formats (all JSON, sealed before they leave):
- template content, sealed with a fresh template key: `{"keys", "content"}`, the owner's
  public keys and the business content;
- a token for a template, sealed with a fresh token key: `{"type": "RelationshipTemplate",
  "templateId", "key"}`; its reference (token id + token key) is what a QR code carries;
- a relationship request's creation content, sealed with the template key (which only the
  owner and whoever got the reference hold): `{"keys", "content"}`, the requester's keys;
- the acceptance's response content, sealed with the relationship secret: `{"content"}`;
- a file: its bytes sealed with a fresh file key, its name and type sealed with the same key
  in `encryptedProperties`;
- a message: `connector.crypto.seal_message` over `{"content", "recipients", "attachments"}`,
  each attachment `{"id", "key"}`: the only way a file's key travels.

Events that business systems hear of (`MessageReceived`, `RelationshipRequested`,
`RelationshipChanged`) are enqueued in the webhook outbox in the same SQLite transaction
as the change that caused them, so each is announced once, also across crashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector import crypto
from connector.backbone_client import BackboneError, DeviceSession
from connector.crypto import DecryptionFailed, PublicKeys
from connector.identities import LocalIdentity
from connector.keystore import Keystore
from connector.store import Store
from connector.webhooks import Outbox, WebhookTarget

log = logging.getLogger("connector.service")

TOKEN_LIFETIME = timedelta(days=30)  # when the template sets no expiry of its own


class ConnectorError(Exception):
    """Refused by the Connector itself (not the backbone): `status`, machine-readable `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _unjson(raw: bytes | str) -> Any:
    return json.loads(raw)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class ConnectorService:
    identity: LocalIdentity
    session: DeviceSession
    store: Store
    keystore: Keystore
    outbox: Outbox
    targets: list[WebhookTarget]
    on_event: Callable[[], None] = lambda: None  # told after an event entered the outbox

    @property
    def address(self) -> str:
        return self.identity.address

    # --- templates and tokens -------------------------------------------------------------

    async def create_template(
        self, content: Any, expires_at: datetime | None = None, max_allocations: int | None = None
    ) -> dict[str, Any]:
        key = crypto.new_content_key()
        public = self.identity.keys.public().to_json()
        sealed = crypto.seal(key, _json({"keys": public, "content": content}), b"template")
        created = await self.session.create_template(sealed, expires_at, max_allocations)
        self.store.query(
            "INSERT INTO templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (created["id"], self.address, self.address, self._seal_key(key, created["id"]),
             json.dumps(public), json.dumps(content), created.get("expiresAt"), _now()),
        )  # fmt: skip
        return self.template_dto(created["id"])

    async def create_template_token(self, template_id: str) -> dict[str, Any]:
        """A token that leads to one of our templates: its reference fits a QR code."""
        row = self._template(template_id)
        if row.owner != self.address:
            raise ConnectorError(404, "error.connector.templateNotFound", "no own template")
        inner = {
            "type": "RelationshipTemplate",
            "templateId": template_id,
            "key": base64.b64encode(self._template_key(row)).decode(),
        }
        expires = (datetime.fromisoformat(row.expires_at) if row.expires_at
                   else datetime.now(UTC) + TOKEN_LIFETIME)  # fmt: skip
        return await self._create_token(inner, expires)

    async def create_token(self, content: Any, expires_at: datetime) -> dict[str, Any]:
        return await self._create_token({"type": "Content", "content": content}, expires_at)

    async def _create_token(self, inner: dict[str, Any], expires_at: datetime) -> dict[str, Any]:
        key = crypto.new_content_key()
        created = await self.session.create_token(crypto.seal(key, _json(inner), b"token"),
                                                  expires_at)  # fmt: skip
        reference = crypto.encode_reference(created["id"], key)
        expires = created.get("expiresAt") or expires_at.isoformat()
        self.store.query(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
            (created["id"], self.address, reference, json.dumps(inner), expires, _now()),
        )
        return {"id": created["id"], "reference": reference, "expiresAt": expires,
                "content": _public_token_content(inner)}  # fmt: skip

    async def load_reference(self, reference: str) -> dict[str, Any]:
        """A peer's template (by a template or token reference) or a content token."""
        try:
            object_id, key = crypto.decode_reference(reference.strip())
        except ValueError as exc:
            raise ConnectorError(400, "error.connector.invalidReference", str(exc)) from exc
        if object_id.startswith("TOK"):
            token = await self.session.token_content(object_id)
            inner = self._open(key, token["content"], b"token", "token")
            if inner.get("type") == "RelationshipTemplate":
                return await self._load_template(inner["templateId"],
                                                 base64.b64decode(inner["key"]))  # fmt: skip
            return {"type": "Token", "id": object_id, "createdBy": token["createdBy"],
                    "content": inner.get("content")}  # fmt: skip
        if object_id.startswith("RLT"):
            return await self._load_template(object_id, key)
        raise ConnectorError(400, "error.connector.invalidReference", "unknown object type")

    async def _load_template(self, template_id: str, key: bytes) -> dict[str, Any]:
        template = await self.session.template(template_id)
        inner = self._open(key, template["content"], b"template", "template")
        try:
            PublicKeys.from_json(inner["keys"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ConnectorError(400, "error.connector.invalidTemplate", "no keys") from exc
        self.store.query(
            "INSERT OR IGNORE INTO templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (template_id, self.address, template["createdBy"], self._seal_key(key, template_id),
             json.dumps(inner["keys"]), json.dumps(inner.get("content")),
             template.get("expiresAt"), _now()),
        )  # fmt: skip
        return self.template_dto(template_id)

    def template_dto(self, template_id: str) -> dict[str, Any]:
        row = self._template(template_id)
        own = row.owner == self.address
        return {
            "type": "RelationshipTemplate",
            "id": row.id,
            "createdBy": row.owner,
            "isOwn": own,
            "content": _unjson(row.content),
            "expiresAt": row.expires_at,
            "reference": crypto.encode_reference(row.id, self._template_key(row)) if own else None,
            "createdAt": row.created_at,
        }

    def templates(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT id FROM templates WHERE address = ? ORDER BY created_at",
                                (self.address,))  # fmt: skip
        return [self.template_dto(r.id) for r in rows]

    def tokens(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM tokens WHERE address = ? ORDER BY created_at",
                                (self.address,))  # fmt: skip
        return [{"id": r.id, "reference": r.reference, "expiresAt": r.expires_at,
                 "content": _public_token_content(_unjson(r.content)), "createdAt": r.created_at}
                for r in rows]  # fmt: skip

    # --- files -------------------------------------------------------------------------

    async def upload_file(
        self, data: bytes, name: str, mimetype: str, expires_at: datetime
    ) -> dict[str, Any]:
        """Sealed with a fresh key; the key travels only inside messages that attach it."""
        key = crypto.new_content_key()
        ciphertext = crypto.seal(key, data, b"file")
        properties = crypto.seal(key, _json({"name": name, "mimetype": mimetype}), b"file-props")
        created = await self.session.upload_file(
            ciphertext, hashlib.sha256(ciphertext).digest(), expires_at, properties
        )
        self.store.query(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (created["id"], self.address, self.address, self._seal_file_key(key, created["id"]),
             name, mimetype, len(data), created["expiresAt"], _now()),
        )  # fmt: skip
        return self.file_dto(created["id"])

    async def _learn_file(self, file_id: str, key: bytes) -> None:
        """An attachment of a received message: its name and type, opened with its key."""
        if self.store.query("SELECT 1 FROM files WHERE id = ? AND address = ?",
                            (file_id, self.address)):  # fmt: skip
            return
        meta = await self.session.file_metadata(file_id)
        props = self._open(key, meta["encryptedProperties"] or "", b"file-props", "file")
        self.store.query(
            "INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (file_id, self.address, meta["createdBy"], self._seal_file_key(key, file_id),
             str(props.get("name", "")), str(props.get("mimetype", "")),
             max(0, int(meta["cipherSize"]) - crypto.SEAL_OVERHEAD), meta["expiresAt"], _now()),
        )  # fmt: skip

    async def download_file(self, file_id: str) -> tuple[bytes, dict[str, Any]]:
        """The plaintext, after checking the ciphertext against the uploader's hash."""
        row = self._file(file_id)
        meta = await self.session.file_metadata(file_id)
        ciphertext = await self.session.file_content(file_id)
        if hashlib.sha256(ciphertext).digest() != base64.b64decode(meta["cipherHash"]):
            raise ConnectorError(502, "error.connector.fileDamaged",
                                 "the file's content does not match its hash")  # fmt: skip
        key = self.keystore.open(row.sealed_key, f"file:{file_id}")
        try:
            return crypto.open_sealed(key, ciphertext, b"file"), self.file_dto(file_id)
        except DecryptionFailed as exc:
            raise ConnectorError(502, "error.connector.cannotDecrypt",
                                 "the file does not open with its key") from exc  # fmt: skip

    def file_dto(self, file_id: str) -> dict[str, Any]:
        r = self._file(file_id)
        return {"id": r.id, "owner": r.owner, "isOwn": r.owner == self.address, "name": r.name,
                "mimetype": r.mimetype, "size": r.size, "expiresAt": r.expires_at,
                "createdAt": r.created_at}  # fmt: skip

    def files(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT id FROM files WHERE address = ? ORDER BY rowid",
                                (self.address,))  # fmt: skip
        return [self.file_dto(r.id) for r in rows]

    # --- relationships ------------------------------------------------------------------

    async def request_relationship(self, template_id: str, content: Any) -> dict[str, Any]:
        row = self._template(template_id)
        if row.owner == self.address:
            raise ConnectorError(400, "error.connector.ownTemplate",
                                 "a relationship to yourself cannot be requested")  # fmt: skip
        peer_keys = PublicKeys.from_json(_unjson(row.owner_keys))
        mine = self.identity.keys.public().to_json()
        sealed = crypto.seal(self._template_key(row), _json({"keys": mine, "content": content}),
                             b"request")  # fmt: skip
        created = await self.session.request_relationship(template_id, sealed)
        secret = crypto.relationship_secret(self.identity.keys, peer_keys, template_id)
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO relationships VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (created["id"], self.address, row.owner, template_id, "outgoing",
                 created["status"], row.owner_keys, self._seal_secret(secret, created["id"]),
                 json.dumps(content), None, _now(), _now()),
            )  # fmt: skip
        return self.relationship_dto(created["id"])

    async def relationship_step(
        self, relationship_id: str, step: str, content: Any = None
    ) -> dict[str, Any]:
        """Accept, Reject, Revoke, Terminate …: the backbone decides what is allowed."""
        row = self._relationship(relationship_id)
        response = None
        if step == "Accept":
            secret = self.keystore.open(row.sealed_secret, f"secret:{relationship_id}")
            response = crypto.seal(secret, _json({"content": content}), b"response")
        changed = await self.session.relationship_step(relationship_id, step, response)
        self._record_status(row, changed["status"], json.dumps(content) if response else None)
        return self.relationship_dto(relationship_id)

    def relationship_dto(self, relationship_id: str) -> dict[str, Any]:
        r = self._relationship(relationship_id)
        return {
            "id": r.id,
            "peer": r.peer,
            "templateId": r.template_id,
            "direction": r.direction,
            "status": r.status,
            "creationContent": _unjson(r.creation_content),
            "responseContent": _unjson(r.response_content) if r.response_content else None,
            "createdAt": r.created_at,
            "updatedAt": r.updated_at,
        }

    def relationships(self, status: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT id, status FROM relationships WHERE address = ? ORDER BY created_at",
            (self.address,),
        )
        return [self.relationship_dto(r.id) for r in rows if status in (None, r.status)]

    # --- messages -----------------------------------------------------------------------

    async def send_message(
        self, recipients: list[str], content: Any, attachments: list[str] | None = None
    ) -> dict[str, Any]:
        if not recipients or len(set(recipients)) != len(recipients):
            raise ConnectorError(400, "error.connector.invalidRecipients",
                                 "recipients must be distinct and at least one")  # fmt: skip
        secrets = {}
        for peer in recipients:
            relationship = self._active_with(peer)
            secrets[peer] = self.keystore.open(relationship.sealed_secret,
                                               f"secret:{relationship.id}")  # fmt: skip
        files = [(self._file(f).id, self._file_key(f)) for f in attachments or []]
        plaintext = _json({"content": content, "recipients": recipients,
                           "attachments": [{"id": f, "key": base64.b64encode(k).decode()}
                                           for f, k in files]})  # fmt: skip
        sealed = crypto.seal_message(self.identity.keys, self.address, plaintext, secrets)
        sent = await self.session.send_message(sealed.body, sealed.wrapped_keys,
                                               [f for f, _ in files])  # fmt: skip
        self.store.query(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sent["id"], self.address, "outgoing", self.address, json.dumps(recipients),
             json.dumps(content), json.dumps([f for f, _ in files]), None,
             sent.get("createdAt") or _now()),
        )  # fmt: skip
        return self.message_dto(sent["id"])

    def message_dto(self, message_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM messages WHERE id = ? AND address = ?",
                                (message_id, self.address))  # fmt: skip
        if not rows:
            raise ConnectorError(404, "error.connector.messageNotFound", "message not found")
        return _message_dto(rows[0])

    def messages(
        self, peer: str | None = None, direction: str | None = None, limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """In the order this Connector learned of them: incoming ones in mailbox order."""
        rows = self.store.query(
            "SELECT * FROM messages WHERE address = :me"
            " AND (:direction IS NULL OR direction = :direction)"
            " AND (:peer IS NULL OR sender = :peer OR EXISTS"
            "      (SELECT 1 FROM json_each(recipients) WHERE value = :peer))"
            " ORDER BY rowid LIMIT :limit OFFSET :offset",
            {
                "me": self.address,
                "direction": direction,
                "peer": peer,
                "limit": limit,
                "offset": offset,
            },
        )
        return [_message_dto(r) for r in rows]

    # --- the mailbox ----------------------------------------------------------------------

    async def handle_entry(self, entry: dict[str, Any]) -> None:
        """One mailbox entry. Idempotent: the mailbox consumer may hand it in twice."""
        kind, payload = entry["type"], entry["payload"]
        try:
            if kind == "MessageReceived":
                await self._message_received(entry["index"], payload)
            elif kind in (
                "RelationshipStatusChanged",
                "RelationshipReactivationRequested",
                "RelationshipReactivationCompleted",
                "RelationshipDecomposedByPeer",
            ):
                await self._relationship_changed(payload["relationshipId"])
        except DecryptionFailed as exc:
            # Not ours to fix and retrying cannot help: keep going, but say so.
            log.error("a mailbox entry could not be opened; skipped",
                      extra={"index": entry["index"], "type": kind, "error": str(exc)})  # fmt: skip
        except BackboneError as exc:
            if exc.status != 404:
                raise  # transient: the consumer retries this entry
            log.warning("a mailbox entry refers to something gone; skipped",
                        extra={"index": entry["index"], "type": kind})  # fmt: skip

    async def _message_received(self, index: int, payload: dict[str, Any]) -> None:
        if self.store.query("SELECT 1 FROM messages WHERE id = ?", (payload["messageId"],)):
            return
        sender = payload["createdBy"]
        if "body" in payload:
            body = base64.b64decode(payload["body"])
        else:  # too large to ride in the entry
            body = base64.b64decode((await self.session.message(payload["messageId"]))["body"])
        relationship = self._active_with(sender, any_status=True)
        secret = self.keystore.open(relationship.sealed_secret, f"secret:{relationship.id}")
        plaintext = crypto.open_message(
            body, base64.b64decode(payload["encryptedKey"]), sender,
            PublicKeys.from_json(_unjson(relationship.peer_keys)), self.address, secret,
        )  # fmt: skip
        inner = _unjson(plaintext)
        attached = inner.get("attachments", [])
        for file in attached:  # before the message: whoever sees it can download them
            await self._learn_file(file["id"], base64.b64decode(file["key"]))
        row = (payload["messageId"], self.address, "incoming", sender,
               json.dumps(inner.get("recipients", [self.address])), json.dumps(inner["content"]),
               json.dumps([f["id"] for f in attached]), index,
               payload.get("createdAt") or _now())  # fmt: skip
        with self.store.transaction() as db:
            db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            self.outbox.enqueue("MessageReceived", _message_dto_from(row), self.targets, conn=db)
        self.on_event()

    async def _relationship_changed(self, relationship_id: str) -> None:
        remote = await self.session.relationship(relationship_id)
        known = self.store.query("SELECT * FROM relationships WHERE id = ?", (relationship_id,))
        if known:
            row = known[0]
            response = None
            if remote.get("creationResponseContent") and row.response_content is None:
                secret = self.keystore.open(row.sealed_secret, f"secret:{relationship_id}")
                opened = self._open(secret, remote["creationResponseContent"], b"response",
                                    "relationship response")  # fmt: skip
                response = json.dumps(opened.get("content"))
            self._record_status(row, remote["status"], response)
            return
        if remote["to"] != self.address:
            return  # requested from another device of ours: nothing we can open
        template = self._template(remote["relationshipTemplateId"])
        inner = self._open(self._template_key(template), remote["creationContent"], b"request",
                           "relationship request")  # fmt: skip
        peer_keys = PublicKeys.from_json(inner["keys"])
        secret = crypto.relationship_secret(self.identity.keys, peer_keys, template.id)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO relationships VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (relationship_id, self.address, remote["from"], template.id, "incoming",
                 remote["status"], json.dumps(inner["keys"]),
                 self._seal_secret(secret, relationship_id), json.dumps(inner.get("content")),
                 None, _now(), _now()),
            )  # fmt: skip
            event = {"id": relationship_id, "peer": remote["from"], "status": remote["status"],
                     "templateId": template.id,
                     "creationContent": inner.get("content")}  # fmt: skip
            self.outbox.enqueue("RelationshipRequested", event, self.targets, conn=db)
        self.on_event()

    def _record_status(self, row: Any, status: str, response: str | None) -> None:
        with self.store.transaction() as db:
            current = db.execute(
                "SELECT status, response_content FROM relationships WHERE id = ?", (row.id,)
            ).fetchone()
            if current[0] == status and (response is None or current[1] is not None):
                return
            changed = current[0] != status
            db.execute(
                "UPDATE relationships SET status = ?, response_content = coalesce(?,"
                " response_content), updated_at = ? WHERE id = ?",
                (status, response, _now(), row.id),
            )
            if changed:
                event = {"id": row.id, "peer": row.peer, "oldStatus": current[0],
                         "status": status}  # fmt: skip
                self.outbox.enqueue("RelationshipChanged", event, self.targets, conn=db)
        if changed:
            self.on_event()

    # --- helpers ------------------------------------------------------------------------

    def _template(self, template_id: str) -> Any:
        rows = self.store.query("SELECT * FROM templates WHERE id = ? AND address = ?",
                                (template_id, self.address))  # fmt: skip
        if not rows:
            raise ConnectorError(404, "error.connector.templateNotFound",
                                 "unknown template: load it by its reference first")  # fmt: skip
        return rows[0]

    def _relationship(self, relationship_id: str) -> Any:
        rows = self.store.query("SELECT * FROM relationships WHERE id = ? AND address = ?",
                                (relationship_id, self.address))  # fmt: skip
        if not rows:
            raise ConnectorError(404, "error.connector.relationshipNotFound",
                                 "relationship not found")  # fmt: skip
        return rows[0]

    def _active_with(self, peer: str, any_status: bool = False) -> Any:
        rows = self.store.query(
            "SELECT * FROM relationships WHERE address = ? AND peer = ? ORDER BY updated_at DESC",
            (self.address, peer),
        )
        for row in rows:
            if any_status or row.status == "Active":
                return row
        raise ConnectorError(400, "error.connector.noActiveRelationship",
                             f"no active relationship with {peer}")  # fmt: skip

    def _file(self, file_id: str) -> Any:
        rows = self.store.query("SELECT * FROM files WHERE id = ? AND address = ?",
                                (file_id, self.address))  # fmt: skip
        if not rows:
            raise ConnectorError(404, "error.connector.fileNotFound", f"unknown file {file_id}")
        return rows[0]

    def _file_key(self, file_id: str) -> bytes:
        return self.keystore.open(self._file(file_id).sealed_key, f"file:{file_id}")

    def _seal_file_key(self, key: bytes, file_id: str) -> bytes:
        return self.keystore.seal(key, f"file:{file_id}")

    def _template_key(self, row: Any) -> bytes:
        return self.keystore.open(row.sealed_key, f"template:{row.id}")

    def _seal_key(self, key: bytes, template_id: str) -> bytes:
        return self.keystore.seal(key, f"template:{template_id}")

    def _seal_secret(self, secret: bytes, relationship_id: str) -> bytes:
        return self.keystore.seal(secret, f"secret:{relationship_id}")

    @staticmethod
    def _open(key: bytes, content_b64: str, context: bytes, what: str) -> Any:
        try:
            return _unjson(crypto.open_sealed(key, base64.b64decode(content_b64), context))
        except (DecryptionFailed, ValueError) as exc:
            raise ConnectorError(400, "error.connector.cannotDecrypt",
                                 f"the {what} does not open with this key") from exc  # fmt: skip


def _public_token_content(inner: dict[str, Any]) -> Any:
    # The template key inside a template token stays in the Connector.
    if inner.get("type") == "RelationshipTemplate":
        return {"type": "RelationshipTemplate", "templateId": inner["templateId"]}
    return inner.get("content")


def _message_dto_from(row: tuple[Any, ...]) -> dict[str, Any]:
    names = ("id", "address", "direction", "sender", "recipients", "content", "attachments",
             "mailbox_index", "created_at")  # fmt: skip
    return _message_dto(dict(zip(names, row, strict=True)))


def _message_dto(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "direction": r["direction"],
        "createdBy": r["sender"],
        "recipients": _unjson(r["recipients"]),
        "content": _unjson(r["content"]),
        "attachments": _unjson(r["attachments"]),
        "createdAt": r["created_at"],
    }
