"""Idempotency-Key: what a retry shares with its first request, and what it must not."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from api.idempotency import INVALID_KEY, MaybeIdempotent
from backbone import idempotency
from backbone.security.ids import is_valid_id


def test_a_key_is_scoped_to_its_caller_method_and_path() -> None:
    base = idempotency.key_id("did:e:a", "POST", "/Messages", "k1")
    assert base == idempotency.key_id("did:e:a", "POST", "/Messages", "k1")
    others = {
        idempotency.key_id("did:e:b", "POST", "/Messages", "k1"),
        idempotency.key_id("did:e:a", "PUT", "/Messages", "k1"),
        idempotency.key_id("did:e:a", "POST", "/Tokens", "k1"),
        idempotency.key_id("did:e:a", "POST", "/Messages", "k2"),
    }
    assert base not in others and len(others) == 4


def test_the_correlation_id_carries_key_and_fingerprint() -> None:
    corr = idempotency.correlation_id("abc", "f1")
    assert idempotency.split(corr) == ("abc", "f1")
    assert idempotency.split("7d0c0a3e-6f2b-4c1e-9a57-1b2c3d4e5f60") is None


def test_a_key_reused_with_another_body_is_recognised() -> None:
    first = idempotency.correlation_id("abc", "f1")
    assert idempotency.reuses_key(idempotency.correlation_id("abc", "f2"), [first])
    assert not idempotency.reuses_key(idempotency.correlation_id("xyz", "f2"), [first])
    assert not idempotency.reuses_key("a-random-uuid", [first])


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.post("/api/{version}/Things")
    async def things(key: MaybeIdempotent) -> Any:
        if key is None:
            return {"key": None}
        idem = key.scoped("did:e:caller")
        return {"corr": idem.correlation_id, "id": idem.resource_id("MSG")}

    @app.get("/down")
    async def down() -> Any:
        raise NoHostAvailable("no host", {})

    @app.post("/down-after-send")
    async def down_after_send() -> Any:
        errors.note_command_sent()
        raise OperationTimedOut()

    return app


def test_a_retry_gets_the_same_ids_and_another_body_other_ids() -> None:
    client = TestClient(_app())
    first = client.post("/api/v2/Things", json={"a": 1}, headers={"Idempotency-Key": "k"}).json()
    again = client.post("/api/v1/Things", json={"a": 1}, headers={"Idempotency-Key": "k"}).json()
    other = client.post("/api/v2/Things", json={"a": 2}, headers={"Idempotency-Key": "k"}).json()
    assert first == again  # the same endpoint under v1 and v2 is one scope
    assert is_valid_id(first["id"], "MSG")
    assert other["id"] != first["id"]
    split_first, split_other = (idempotency.split(x["corr"]) for x in (first, other))
    assert split_first and split_other and split_first[0] == split_other[0]
    assert client.post("/api/v2/Things", json={"a": 1}).json() == {"key": None}


@pytest.mark.parametrize("value", ["", "x" * 256, "naïve", "tab\there"])
def test_a_malformed_key_is_refused(value: str) -> None:
    answer = TestClient(_app()).post(
        "/api/v2/Things", json={}, headers={"Idempotency-Key": value.encode()}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == INVALID_KEY


def test_a_store_failure_is_a_503_that_says_nothing_was_written() -> None:
    answer = TestClient(_app(), raise_server_exceptions=False).get("/down")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    body = answer.json()["error"]
    assert body["code"] == "error.platform.serviceUnavailable"
    assert body["writeOutcome"] == "notApplied"


def test_a_store_failure_after_the_command_went_out_says_the_outcome_is_unknown() -> None:
    answer = TestClient(_app(), raise_server_exceptions=False).post("/down-after-send")
    assert answer.status_code == 503
    assert answer.json()["error"]["writeOutcome"] == "unknown"
