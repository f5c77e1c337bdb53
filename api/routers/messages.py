"""`/api/v1/Messages`: one encrypted body to 1..N recipients, each with its own wrapped key.

The ciphertext is stored once. Only the sender and the recipients can read a message; a
recipient's first read is recorded (`receivedAt`) and the sender's mailbox learns of it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.content import BASE64_PATTERN, decode_content, encode_content
from api.deps import Authenticated, Caller, State, still_authorized
from api.errors import ApiError, unavailable
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.paging import Ids, Paging
from api.schemas import Created, Envelope, MessageOut, PagedEnvelope, documented
from api.state import ApiState
from api.timestamps import iso
from api.versioning import encode_bytes
from backbone.security.addresses import is_valid_address
from store.readmodels.messages import Message, Recipient

router = APIRouter(prefix="/Messages", tags=["messages"])

NOT_FOUND = "error.platform.recordNotFound"
INVALID = "error.platform.validation.invalidPropertyValue"
NO_RELATIONSHIP = "error.platform.validation.message.noActiveRelationshipWithRecipient"
MAX_BODY_BYTES = 32 * 1024
MAX_KEY_BYTES = 1024
MAX_ATTACHMENTS = 20
MessageId = Annotated[str, Path(pattern=r"^MSG[A-Za-z0-9]{17}$")]
# `Prefer: wait=N` on a read: at most this many seconds (a longer wait holds a connection
# and a task for what a client can as well ask again).
MAX_WAIT_S = 10
BAD_WAIT = "error.platform.validation.invalidPreference"


class RecipientIn(BaseModel):
    address: str = Field(min_length=1, max_length=80)
    encryptedKey: str = Field(min_length=1, max_length=2000, pattern=BASE64_PATTERN)


FileIdField = Annotated[str, Field(pattern=r"^FIL[A-Za-z0-9]{17}$")]


class AttachmentIn(BaseModel):
    id: FileIdField


class SendMessageRequest(BaseModel):
    recipients: list[RecipientIn] = Field(min_length=1)
    body: str = Field(min_length=1, max_length=48_000, pattern=BASE64_PATTERN)
    # Enmeshed sends `[{"id": "FIL…"}]`; a bare id is still taken (older clients, the
    # Connector).
    attachments: list[AttachmentIn | FileIdField] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS
    )

    def attachment_ids(self) -> list[str]:
        return [a.id if isinstance(a, AttachmentIn) else a for a in self.attachments]


ACCEPTED_ASYNC = (
    "With `Prefer: respond-async`: the message is on the log (every in-sync replica has it) "
    "and will be delivered, but not yet readable; the sender's mailbox gets its "
    "`MessageSent` entry once it is (`Preference-Applied: respond-async`)."
)


@router.post(
    "",
    status_code=201,
    responses={
        **documented(Envelope[Created], 201),
        **documented(Envelope[Created], 202, ACCEPTED_ASYNC),
    },
)
async def send_message(
    body: SendMessageRequest,
    caller: Authenticated,
    state: State,
    key: MaybeIdempotent,
    prefer: Annotated[
        str | None,
        Header(
            description="`respond-async`: answer 202 as soon as the message is durable on "
            "the log, before it is readable (RFC 7240)"
        ),
    ] = None,
) -> Any:
    limit = state.settings.max_recipients
    if len(body.recipients) > limit:
        raise ApiError(400, INVALID, f"recipients: at most {limit}")
    addresses = [r.address for r in body.recipients]
    if len(set(addresses)) != len(addresses):
        raise ApiError(400, INVALID, "recipients: each address once")
    bad = [a for a in addresses if not is_valid_address(a) or a == caller.address]
    if bad:
        raise ApiError(400, INVALID, f"recipients: not a valid peer address: {bad[0]}")
    recipients = [
        {
            "address": r.address,
            "encrypted_key": decode_content(r.encryptedKey, "encryptedKey", MAX_KEY_BYTES),
        }
        for r in body.recipients
    ]
    ciphertext = decode_content(body.body, "body", MAX_BODY_BYTES)
    attachments = body.attachment_ids()
    if len(set(attachments)) != len(attachments):
        raise ApiError(400, INVALID, "attachments: each file once")
    await _require_files(state, attachments)
    if state.settings.messages_need_relationship:  # the relationship check reads too
        await _require_active_relationships(state, caller.address, addresses)
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    message_id, now = new_resource_id("MSG", idem), datetime.now(UTC)
    if idem is not None:
        first = await _stored(state, message_id)
        if first is not None:  # a repeat of a send already written: its first answer
            return {"result": {"id": message_id, "createdAt": iso(first.created_at)}}
    # A message is a fact once validated: no invariant needs a single writer, so the API
    # appends the event itself, sealed with the sender's data key, instead of a command for
    # a decider (one hop and three records fewer per message).
    key_id = state.envelopes.identity_key_id(caller.address)
    try:
        await state.sender_keys.load(key_id)
    except KeyError:
        raise unavailable("the sender's identity is not ready yet; try again") from None
    aggregate = state.envelopes.aggregate_key("message", message_id)
    event = {
        "message_id": message_id,
        "sender": caller.address,
        "sender_device": caller.device_id,
        "body": ciphertext,
        "attachments": attachments,
        "recipients": recipients,
        "created_at": now,
    }
    if _respond_async(prefer):
        # Durable is enough for a high-volume sender: the answer does not wait for the
        # projection (about two thirds of a send's time, measured in bench.stage_timing).
        # A keyed repeat appends the same event id, so `createdAt` may differ from the
        # first answer's by the repeat's delay; the message and its entries do not.
        await state.bus.append_durable(
            state.topics.events, aggregate, "MessageSent", event, key_id, idem
        )
        return JSONResponse(
            {"result": {"id": message_id, "createdAt": iso(now)}},
            status_code=202,
            headers={"Preference-Applied": "respond-async"},
        )
    await state.bus.append(state.topics.events, aggregate, "MessageSent", event, key_id, 201, idem)
    if idem is not None:  # a repeat answers with the first request's time
        now = (await _readable(state, message_id, caller))[0].created_at
    return {"result": {"id": message_id, "createdAt": iso(now)}}


def _respond_async(prefer: str | None) -> bool:
    """Whether a `Prefer` header asks for `respond-async` (RFC 7240: a comma-separated list
    of preferences, each maybe with parameters)."""
    if not prefer:
        return False
    return any(p.split(";")[0].strip().lower() == "respond-async" for p in prefer.split(","))


async def _require_files(state: ApiState, file_ids: list[str]) -> None:
    """Every attachment is a file that exists and has not expired: a message named ids that
    led nowhere (issue 19). Whoever holds a file's id may read it (api/routers/files.py), so
    a forwarded file of another owner is fine."""
    found = await asyncio.gather(*(state.reads.files.get(f) for f in file_ids))
    for file_id, file in zip(file_ids, found, strict=True):
        if file is None:  # not there, or expired
            raise ApiError(400, INVALID, f"attachments: no file {file_id}")


async def _require_active_relationships(
    state: ApiState, sender: str, recipients: list[str]
) -> None:
    # Read from the read model: a relationship terminated a moment ago may still let one
    # message through. The pair decider is the writer; this is a guard, not an invariant.
    relationships = state.reads.relationships
    # One round trip per recipient, all at once.
    found = await asyncio.gather(*(relationships.with_peer(sender, r) for r in recipients))
    missing = [
        r
        for r, links in zip(recipients, found, strict=True)
        if not any(link.status == "Active" for link in links)
    ]
    if missing:
        missing = await _not_active_by_scan(state, sender, missing)
    if missing:
        raise ApiError(400, NO_RELATIONSHIP, f"no active relationship with {missing[0]}")


async def _not_active_by_scan(state: ApiState, sender: str, recipients: list[str]) -> list[str]:
    """The guard for relationships projected before `relationship_peers` existed: every
    relationship of the sender. Only reached for a recipient the index does not show active."""
    relationships = state.reads.relationships
    ids = await relationships.ids_of(sender)
    active: set[str] = set()
    for parties in await asyncio.gather(*(relationships.parties(i) for i in ids)):
        if parties is not None and parties.status == "Active":
            active.add(parties.peer_of(sender))
    return [r for r in recipients if r not in active]


@router.get("/{message_id}", responses=documented(Envelope[MessageOut], refuses=(400,)))
async def get_message(
    message_id: MessageId,
    caller: Authenticated,
    state: State,
    prefer: Annotated[
        str | None,
        Header(
            description=f"`wait=N` (N whole seconds, at most {MAX_WAIT_S}): a message not "
            "written yet is waited for up to N seconds (never past the token's expiry) "
            "before the answer is 404, so a sender that got 202 (`respond-async`) reads its "
            "own write as soon as it is readable (RFC 7240)"
        ),
    ] = None,
) -> Any:
    message, recipients = await _readable(state, message_id, caller, _wait_preference(prefer))
    mine = next((r for r in recipients if r.address == caller.address), None)
    if mine is not None and mine.received_at is None:
        await state.bus.send(
            state.topics.message_commands,
            state.envelopes.aggregate_key("message", message_id),
            "MarkMessageReceived",
            {
                "message_id": message_id,
                "recipient": caller.address,
                "sender": message.sender,
                "recipients": [r.address for r in recipients],
                "recipient_device": caller.device_id,
                "requested_at": datetime.now(UTC),
            },
        )
        message, recipients = await _readable(state, message_id, caller)
    return {"result": _dto(message, recipients)}


def _wait_preference(prefer: str | None) -> float:
    """The seconds of a `wait=N` preference (RFC 7240), 0 without one; 400 when N is not a
    whole number of seconds from 0 to MAX_WAIT_S."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_WAIT_S:
            raise ApiError(400, BAD_WAIT, f"Prefer: wait takes whole seconds, 0 to {MAX_WAIT_S}")
        return float(value)
    return 0.0


@router.get("", responses=documented(PagedEnvelope[MessageOut]))
async def list_messages(caller: Authenticated, state: State, page: Paging, ids: Ids = None) -> Any:
    wanted = set(ids) if ids else None
    found = []
    for message_id in await state.reads.messages.ids_for(caller.address):
        if wanted is None or message_id in wanted:
            try:
                found.append(_dto(*await _readable(state, message_id, caller)))
            except ApiError:
                continue  # expired between the index and the row
    return page.envelope(found)


async def _stored(state: ApiState, message_id: str) -> Message | None:
    return await state.reads.messages.get(message_id)


async def _readable(
    state: ApiState, message_id: str, caller: Caller, wait_s: float = 0.0
) -> tuple[Message, list[Recipient]]:
    """The message and its recipients, if the caller is one of its parties; else 404. With
    `wait_s`, a message not written yet is waited for: the caller's mailbox gets an entry
    for it (MessageSent for each party) only after its rows are written, so each notice
    for the caller is a moment to read again."""
    if wait_s > 0:
        key = state.envelopes.aggregate_key("identity", caller.address)
        wait_s = min(wait_s, caller.seconds_left())
        message, waited = await state.mailbox.until(key, lambda: _stored(state, message_id), wait_s)
        # Like the mailbox's long poll: nothing reaches a device deleted while it waited.
        if waited and not await still_authorized(state, caller):
            raise ApiError(
                401, "error.platform.unauthorized", "the token expired or the device was deleted"
            )
    else:
        message = await _stored(state, message_id)
    if message is None:
        raise ApiError(404, NOT_FOUND, "message not found")
    recipients = await state.reads.messages.recipients(message_id)
    if caller.address not in {message.sender} | {r.address for r in recipients}:
        raise ApiError(404, NOT_FOUND, "message not found")
    return message, recipients


def _dto(message: Message, recipients: list[Recipient]) -> dict[str, Any]:
    return {
        "id": message.id,
        "createdBy": message.sender,
        "createdByDevice": message.sender_device,
        "createdAt": iso(message.created_at),
        "body": encode_content(message.body),
        "attachments": [{"id": a} for a in message.attachments or []],
        "recipients": [
            {
                "address": r.address,
                "encryptedKey": encode_bytes(r.encrypted_key),
                "receivedAt": iso(r.received_at) if r.received_at else None,
                "receivedByDevice": r.received_by_device,
            }
            for r in recipients
        ],
    }
