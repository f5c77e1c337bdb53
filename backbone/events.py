"""`backbone events`: an operator's view of the log, one line (or JSON object) per record.

    backbone events --identity did:e:localhost:dids:… [--type MessageSent] [--since 2026-11-30]
    backbone events --aggregate message:MSG… [--json]
    backbone events --key 1a2b… --no-open
    backbone events --type IdentityDeleted --from-offset -5000 [--until-offset -100] [--limit N]

What it shows is what the backbone itself may see: the envelope's routing metadata (type,
time, aggregate key, version, event, correlation and causation ids, sizes) and, opened with
the master key, the *metadata* fields of the body: ids, addresses, devices, statuses,
times, counts. Fields that carry end-to-end ciphertext (message bodies, content, wrapped
keys, encrypted properties) or secrets (password hashes) are never printed, only their
size: the body fields shown are a fixed allow-list (`SHOWN`), so a field added to a schema
later stays hidden until someone decides it is metadata.

`--identity` selects the identity's own records (sealed with its data key: what it did)
and its mailbox entries (keyed to it: what happened to it). A record whose data key was
shredded still shows its envelope, marked `shredded`.

What is read: every record is keyed by its aggregate key and the producers' partitioner
puts a key on one partition, so `--aggregate` and `--key` read one partition per topic, and
`--identity` reads one partition of `mailbox-entries` (its entries are keyed by it). The
identity's own records on `events` belong to the aggregates they act on (its messages,
relationships, tokens...), spread over every partition: that topic is read whole, with
a byte test before decoding (the keys and data-key ids are plain strings in the Avro
envelope). Type and time filters read everything. `--all-partitions` reads every
partition whatever the selection (for a topic whose partition count was ever raised: a
key then hashes elsewhere than where its old records are). `--from-offset` and
`--until-offset` bound the offsets read in each partition (negative: counted back from its
end), so that a look at a huge log stays short.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backbone.audit.logread import (
    RawRecord,
    key_partition,
    log_bounds,
    partitions_of,
    read_partition,
)
from backbone.security.logcrypto import DecryptionError
from backbone.settings import BackboneSettings
from schemas import codec
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames

# Body fields that are routing metadata, never end-to-end content or secrets.
SHOWN = frozenset(
    {
        "address",
        "device_id",
        "created_by_device",
        "deleted_by_device",
        "client_id",
        "identity_version",
        "relationship_id",
        "template_id",
        "token_id",
        "file_id",
        "message_id",
        "sync_run_id",
        "action",
        "actor",
        "actor_device",
        "status",
        "old_status",
        "reactivation_requested_by",
        "from_address",
        "from_device",
        "to_address",
        "owner",
        "owner_device",
        "requester",
        "requester_device",
        "sender",
        "sender_device",
        "recipient",
        "recipient_device",
        "for_identity",
        "max_allocations",
        "expires_at",
        "created_at",
        "deleted_at",
        "received_at",
        "allocated_at",
        "released_at",
        "finalized_at",
        "expired_at",
        "changed_at",
        "acknowledged_at",
        "occurred_at",
        "requested_at",
        "index",
        "run_type",
        "from_index",
        "to_index",
        "head_index",
        "synced_index",
        "new_datawallet_version",
        "event_type",
        "source_event_id",
        "cipher_size",
        "chunk_count",
        "attachments",
        "ok",
        "status_code",
        "error_code",
        "correlation_id",
    }
)
# Inside a mailbox entry's payload (JSON): the ids it points to.
SHOWN_PAYLOAD = frozenset(
    {
        "messageId",
        "relationshipId",
        "templateId",
        "status",
        "actor",
        "deviceId",
        "recipient",
        "sender",
        "createdBy",
        "createdByDevice",
        "createdAt",
        "attachments",
    }
)
# Who acted, in order of preference.
ACTOR_FIELDS = ("actor", "sender", "owner", "requester", "from_address", "address", "recipient")


# An aggregate key is the first 32 hex digits of an HMAC (store/envelopes.py); the record is
# keyed by it. A Reply's envelope carries its correlation id there instead (a UUID or a
# keyed request's id, never this shape) while the record is keyed by the aggregate it
# answers: a `--key` of another shape is looked for on every partition.
_AGGREGATE_KEY = re.compile(r"^[0-9a-f]{32}$")
# Partitions read at once: each has its own consumer; on two cores more only queue.
READ_CONCURRENCY = 4


@dataclass
class Selection:
    aggregate_keys: set[str] = field(default_factory=set)
    # Always given with the identity's aggregate key (`selection_for`): the records sealed
    # with an identity's data key on `mailbox-entries` are its entries, keyed by it.
    data_key_ids: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=set)
    since: datetime | None = None
    until: datetime | None = None
    all_partitions: bool = False

    def partitions(self, mailbox: bool, partitions: list[int]) -> list[int]:
        """The partitions of a topic that can hold a selected record (`mailbox`: the
        `mailbox-entries` topic, where every record is keyed by its recipient)."""
        if self.all_partitions or not self.aggregate_keys:
            return partitions  # type or time alone: anywhere
        if self.data_key_ids and not mailbox:
            return partitions  # an identity's own records are keyed by other aggregates
        if not all(_AGGREGATE_KEY.match(k) for k in self.aggregate_keys):
            return partitions
        return sorted({key_partition(k.encode(), partitions) for k in self.aggregate_keys})

    def might_want(self, raw: bytes) -> bool:
        """False when the record cannot be selected, decided on its bytes alone: the keys,
        data-key ids and type are UTF-8 strings inside the Avro envelope, so a record
        without any of them is skipped without decoding it."""
        if self.types and not any(t.encode() in raw for t in self.types):
            return False
        if not self.aggregate_keys and not self.data_key_ids:
            return True
        return any(k.encode() in raw for k in self.aggregate_keys | self.data_key_ids)

    def wants(self, envelope: dict[str, Any]) -> bool:
        if self.types and envelope["type"] not in self.types:
            return False
        at = envelope["occurred_at"]
        if self.since is not None and at < self.since:
            return False
        if self.until is not None and at >= self.until:
            return False
        if not self.aggregate_keys and not self.data_key_ids:
            return True
        return (
            envelope["aggregate_key"] in self.aggregate_keys
            or envelope["data_key_id"] in self.data_key_ids
        )


def _size(value: Any) -> int:
    if isinstance(value, bytes | str):
        return len(value)
    return len(json.dumps(value, default=str))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def metadata(name: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """(fields shown, sizes of the fields withheld) of an opened body."""
    shown: dict[str, Any] = {}
    withheld: dict[str, int] = {}
    for key, value in body.items():
        if key in SHOWN:
            shown[key] = _plain(value)
        elif key == "recipients" and isinstance(value, list):
            # One wrapped content key per recipient: the addresses are routing, the keys not.
            shown["recipients"] = [r.get("address") for r in value if isinstance(r, dict)]
            withheld["recipients[].encrypted_key"] = sum(
                len(r.get("encrypted_key") or b"") for r in value if isinstance(r, dict)
            )
        elif key == "payload_json" and isinstance(value, str):
            try:
                payload = json.loads(value)
            except ValueError:
                payload = {}
            if isinstance(payload, dict):
                shown["payload"] = {k: v for k, v in payload.items() if k in SHOWN_PAYLOAD}
            withheld[key] = len(value)
        elif key == "modifications" and isinstance(value, list):
            shown["modification_count"] = len(value)
            withheld[key] = _size(value)
        elif value is not None:
            withheld[key] = _size(value)
    return shown, withheld


async def data_keys(settings: BackboneSettings) -> dict[str, bytes]:
    """Every data key that still exists, unwrapped with the master key."""
    from backbone.datakeys import unwrap_all, wrapped_data_keys
    from store.cassandra import connect

    cluster, session = await asyncio.to_thread(connect, settings.cluster, settings.cluster.keyspace)
    try:
        wrapped = await wrapped_data_keys(settings, session)
    finally:
        await asyncio.to_thread(cluster.shutdown)
    return unwrap_all(settings.master_key_b64, wrapped)


@dataclass(frozen=True)
class Offsets:
    """The offsets read in each partition: `first` inclusive, `until` exclusive; a negative
    one counts back from the partition's end (`first=-100`: its last 100 records)."""

    first: int | None = None
    until: int | None = None

    async def bounds(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int] | None:
        """(first, end) to read, None for the whole partition."""
        if self.first is None and self.until is None:
            return None
        start, end = await log_bounds(bootstrap, topic, partition)

        def absolute(offset: int) -> int:
            return min(max(end + offset if offset < 0 else offset, start), end)

        first = start if self.first is None else absolute(self.first)
        # Never past the end: reading would wait for records that are not there yet.
        return first, end if self.until is None else absolute(self.until)


async def records(
    settings: BackboneSettings,
    selection: Selection,
    topics: list[str],
    open_key: Callable[[str], bytes] | None,
    offsets: Offsets | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The selected records of the topics as plain dicts, partition by partition (up to
    READ_CONCURRENCY partitions read at once)."""
    envelopes = EnvelopeCodec(settings.master_key_b64, open_key or _no_key)
    bounded = offsets or Offsets()
    bootstrap = settings.cluster.kafka_bootstrap
    names = TopicNames(settings.cluster.topic_prefix)
    reads: list[tuple[str, int]] = []
    for topic in topics:
        every = await partitions_of(bootstrap, topic)
        mailbox = topic == names.mailbox_entries
        reads += [(topic, p) for p in selection.partitions(mailbox, every)]
    slots = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(topic: str, partition: int) -> list[dict[str, Any]]:
        async with slots:
            window = await bounded.bounds(bootstrap, topic, partition)
            first, end = window if window is not None else (None, None)
            short = topic.removeprefix(settings.cluster.topic_prefix)
            return [
                out
                async for r in read_partition(bootstrap, topic, partition, first, end)
                if (out := _record(r, short, selection, envelopes, open_key is not None))
                is not None
            ]

    for found in await asyncio.gather(*(read(t, p) for t, p in reads)):
        for out in found:
            yield out


def _record(
    r: RawRecord, topic: str, selection: Selection, envelopes: EnvelopeCodec, open_body: bool
) -> dict[str, Any] | None:
    """The record as a plain dict, None when it is not selected (or not an envelope)."""
    if r.value is None or not selection.might_want(r.value):
        return None
    try:
        _, envelope = codec.decode(r.value)
    except codec.SchemaError:
        return None  # not an envelope: not the backbone's
    if not selection.wants(envelope):
        return None
    out: dict[str, Any] = {
        "time": _plain(envelope["occurred_at"]),
        "topic": topic,
        "partition": r.partition,
        "offset": r.offset,
        "type": envelope["type"],
        "aggregate_key": envelope["aggregate_key"],
        "version": envelope["aggregate_version"],
        "event_id": envelope["event_id"],
        "correlation_id": envelope["correlation_id"],
        "causation_id": envelope["causation_id"],
        "data_key_id": envelope["data_key_id"],
        "record_bytes": len(r.value) + len(r.key or b""),
        "sealed_body_bytes": len(envelope["body"]),
    }
    if open_body:
        try:
            opened = envelopes.open(r.value)
        except KeyError:
            out["body"] = "shredded"  # its data key no longer exists
        except (DecryptionError, codec.SchemaError) as exc:
            out["body"] = f"cannot open: {exc}"
        else:
            shown, withheld = metadata(opened.name, opened.body)
            out["actor"] = next(
                (shown[f] for f in ACTOR_FIELDS if isinstance(shown.get(f), str)),
                None,
            )
            out["fields"] = shown
            out["withheld_bytes"] = withheld
    return out


def _no_key(key_id: str) -> bytes:
    raise KeyError(key_id)


def line(rec: dict[str, Any]) -> str:
    where = f"{rec['topic']}/{rec['partition']}@{rec['offset']}"
    head = f"{rec['time']}  {where:<22} {rec['type']:<28} v{rec['version']:<4}"
    actor = f" by {rec['actor']}" if rec.get("actor") else ""
    size = f" {rec['record_bytes']} B"
    body = rec.get("body")
    if body is not None:
        return f"{head}{size}  [{body}]"
    fields = rec.get("fields")
    detail = ""
    if fields:
        skip = {"actor"}
        detail = "  " + " ".join(f"{k}={json.dumps(v)}" for k, v in fields.items() if k not in skip)
    withheld = rec.get("withheld_bytes")
    if withheld:
        detail += "  withheld: " + ", ".join(f"{k} {n} B" for k, n in withheld.items())
    return f"{head}{actor}{size}{detail}"


def parse_time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def selection_for(
    settings: BackboneSettings,
    identity: str | None,
    aggregates: list[str],
    keys: list[str],
    types: list[str],
    since: str | None,
    until: str | None,
) -> Selection:
    envelopes = EnvelopeCodec(settings.master_key_b64, _no_key)
    sel = Selection(types=set(types))
    if identity:
        sel.aggregate_keys.add(envelopes.aggregate_key("identity", identity))
        sel.data_key_ids.add(envelopes.identity_key_id(identity))
    for aggregate in aggregates:
        kind, sep, ident = aggregate.partition(":")
        if not sep or not ident:
            raise ValueError(f"--aggregate wants TYPE:ID (e.g. message:MSG…), got {aggregate!r}")
        sel.aggregate_keys.add(envelopes.aggregate_key(kind, ident))
    sel.aggregate_keys.update(keys)
    sel.since = parse_time(since) if since else None
    sel.until = parse_time(until) if until else None
    return sel


def topics_for(settings: BackboneSettings, which: str) -> list[str]:
    names = TopicNames(settings.cluster.topic_prefix)
    chosen = {"events": [names.events], "mailbox": [names.mailbox_entries]}
    return chosen.get(which, [names.events, names.mailbox_entries])


async def collect(
    settings: BackboneSettings,
    sel: Selection,
    topics: list[str],
    open_bodies: bool,
    limit: int | None,
    offsets: Offsets | None = None,
) -> list[dict[str, Any]]:
    keys = await data_keys(settings) if open_bodies else None
    opener = keys.__getitem__ if keys is not None else None
    found = [r async for r in records(settings, sel, topics, opener, offsets)]
    found.sort(key=lambda r: (r["time"], r["topic"], r["partition"], r["offset"]))
    return found[-limit:] if limit else found


def _offset(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"{option} wants an offset (an integer; negative counts back from a partition's "
            f"end), got {text!r}"
        ) from None


def offsets_for(first: str | None, until: str | None) -> Offsets:
    """`--from-offset`/`--until-offset` as given; ValueError (one line) for what cannot be read."""
    bounds = Offsets(_offset("--from-offset", first), _offset("--until-offset", until))
    a, b = bounds.first, bounds.until
    # Of the same sign both name offsets of every partition alike: checkable here.
    if a is not None and b is not None and (a < 0) == (b < 0) and a >= b:
        raise ValueError(f"--from-offset {a} is not before --until-offset {b}: nothing to read")
    return bounds


def limit_for(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--limit wants a positive number of records, got {text!r}")
    return int(text)


def cmd_events(args: Any) -> int:
    import sys

    settings = BackboneSettings.from_env()
    try:
        sel = selection_for(
            settings,
            args.identity,
            args.aggregate or [],
            args.key or [],
            args.type or [],
            args.since,
            args.until,
        )
        sel.all_partitions = args.all_partitions
        offsets = offsets_for(args.from_offset, args.until_offset)
        limit = limit_for(args.limit)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from backbone.datakeys import DataKeyError

    try:
        found = asyncio.run(
            collect(
                settings, sel, topics_for(settings, args.topic), not args.no_open, limit, offsets
            )
        )
    except DataKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for rec in found:
        print(json.dumps(rec, separators=(",", ":")) if args.json else line(rec))
    if not args.json:
        print(f"{len(found)} records", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("events", help="the log's records of an identity or aggregate (metadata)")
    p.add_argument("--identity", help="an address: its own records and its mailbox entries")
    p.add_argument("--aggregate", action="append", help="TYPE:ID, e.g. message:MSG… (repeat)")
    p.add_argument("--key", action="append", help="a raw aggregate key (the Kafka record key)")
    p.add_argument("--type", action="append", help="only this record type (repeat)")
    p.add_argument("--since", help="ISO time, inclusive")
    p.add_argument("--until", help="ISO time, exclusive")
    p.add_argument("--topic", choices=["events", "mailbox", "all"], default="all")
    p.add_argument("--limit", help="only the last N (in time order)")
    bounded = "first offset read in each partition (negative: back from its end, e.g. -1000)"
    p.add_argument("--from-offset", metavar="OFFSET", help=bounded)
    p.add_argument("--until-offset", metavar="OFFSET", help="exclusive; as --from-offset")
    every = "read every partition, not only the one a key hashes to"
    p.add_argument("--all-partitions", action="store_true", help=every)
    p.add_argument("--no-open", action="store_true", help="envelopes only: no data keys used")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_events)
