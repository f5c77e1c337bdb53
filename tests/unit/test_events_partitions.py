"""`backbone events` reads only the partitions a selection can be on, and refuses offsets and
limits it cannot read with one line and exit 2 (before touching Kafka)."""

from __future__ import annotations

import base64
import secrets

import pytest
from aiokafka.partitioner import DefaultPartitioner

from backbone.audit.logread import key_partition
from backbone.cli import main
from backbone.events import Selection, offsets_for
from store.envelopes import EnvelopeCodec

PARTITIONS = list(range(12))
CODEC = EnvelopeCodec(base64.b64encode(secrets.token_bytes(32)).decode(), lambda k: b"")


def test_a_key_is_read_where_the_producers_partitioner_puts_it() -> None:
    for i in range(200):
        key = CODEC.aggregate_key("message", f"MSG{i:017d}").encode()
        assert key_partition(key, PARTITIONS) == DefaultPartitioner()(key, PARTITIONS, PARTITIONS)
    # The partitions in whatever order the metadata gives them: the same answer.
    key = CODEC.aggregate_key("identity", "did:e:x:dids:a").encode()
    assert key_partition(key, PARTITIONS[::-1]) == key_partition(key, PARTITIONS)


def test_aggregates_read_one_partition_of_each_topic() -> None:
    keys = {CODEC.aggregate_key("message", "MSGa"), CODEC.aggregate_key("token", "TOKb")}
    sel = Selection(aggregate_keys=keys)
    wanted = sorted({key_partition(k.encode(), PARTITIONS) for k in keys})
    assert sel.partitions(False, PARTITIONS) == wanted
    assert sel.partitions(True, PARTITIONS) == wanted


def test_an_identity_reads_one_mailbox_partition_and_every_events_partition() -> None:
    address = "did:e:localhost:dids:0123456789abcdef0123"
    identity = CODEC.aggregate_key("identity", address)
    sel = Selection(aggregate_keys={identity}, data_key_ids={CODEC.identity_key_id(address)})
    assert sel.partitions(True, PARTITIONS) == [key_partition(identity.encode(), PARTITIONS)]
    # Its messages, relationships, tokens are keyed by themselves, on any partition.
    assert sel.partitions(False, PARTITIONS) == PARTITIONS


def test_type_time_a_correlation_id_or_all_partitions_read_everything() -> None:
    assert Selection(types={"MessageSent"}).partitions(False, PARTITIONS) == PARTITIONS
    # A Reply carries its correlation id as aggregate key but is keyed by its aggregate.
    reply = Selection(aggregate_keys={"f3b1c0de-1111-2222-3333-444455556666"})
    assert reply.partitions(False, PARTITIONS) == PARTITIONS
    forced = Selection(aggregate_keys={CODEC.aggregate_key("message", "M")}, all_partitions=True)
    assert forced.partitions(False, PARTITIONS) == PARTITIONS


def test_the_byte_test_never_drops_a_record_that_would_be_selected() -> None:
    address = "did:e:localhost:dids:0123456789abcdef0123"
    key_id = CODEC.identity_key_id(address)
    sealed = CODEC.seal(
        "Reply",
        {
            "correlation_id": "c",
            "ok": True,
            "status": 201,
            "error_code": None,
            "error_message": None,
            "resource_json": None,
        },
        aggregate_key=CODEC.aggregate_key("message", "MSGx"),
        correlation_id="c",
    )
    mine = Selection(aggregate_keys={CODEC.aggregate_key("message", "MSGx")})
    assert mine.might_want(sealed)
    assert not Selection(data_key_ids={key_id}).might_want(sealed)
    assert Selection(types={"Reply"}).might_want(sealed)
    assert not Selection(types={"MessageSent"}).might_want(sealed)
    assert Selection().might_want(sealed)


def test_offsets_of_the_same_sign_must_leave_something_to_read() -> None:
    assert offsets_for("-100", None).first == -100
    assert offsets_for("10", "-1").until == -1  # checked per partition, not here
    with pytest.raises(ValueError, match="not before"):
        offsets_for("50", "50")
    with pytest.raises(ValueError, match="not before"):
        offsets_for("-10", "-20")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--from-offset", "ten"], "--from-offset wants an offset"),
        (["--until-offset", "1.5"], "--until-offset wants an offset"),
        (["--from-offset", "9", "--until-offset", "3"], "--from-offset 9 is not before"),
        (["--limit", "0"], "--limit wants a positive number"),
        (["--limit", "-3"], "--limit wants a positive number"),
        (["--aggregate", "message"], "--aggregate wants TYPE:ID"),
    ],
)
def test_bad_bounds_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKBONE_MASTER_KEY", base64.b64encode(bytes(32)).decode())
    # Unreachable stores: the command must refuse before it connects to anything.
    monkeypatch.setenv("BACKBONE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert main(["events", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
