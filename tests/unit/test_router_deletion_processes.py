"""`/Identities/Self/DeletionProcesses` against a fake bus and read store: an identity
starts, reads and cancels only its own deletion, and learns why one is refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from backbone.deletion_policy import GRACE_OUT_OF_RANGE
from store.readmodels.deletion import DeletionProcess
from tests.unit.fake_api import NOW, FakeApi, error_code, later, running

PROCESSES = "/api/v2/Identities/Self/DeletionProcesses"
NOT_FOUND = "error.platform.recordNotFound"
ONLY_ONE = "error.platform.validation.device.onlyOneActiveDeletionProcessAllowed"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from running()


def _projected(api: FakeApi) -> None:
    """What the identity's decider and the deletion projection make of a start and a
    cancellation."""
    processes = api.reads.deletion.processes

    def started(c: dict[str, Any]) -> None:
        processes.setdefault(c["address"], []).append(
            DeletionProcess(
                c["deletion_process_id"], "Active", NOW, c["device_id"], later(14), None, None
            )
        )

    def cancelled(c: dict[str, Any]) -> None:
        processes[c["address"]] = [
            dataclasses.replace(p, status="Cancelled", cancelled_at=NOW)
            if p.id == c["deletion_process_id"]
            else p
            for p in processes[c["address"]]
        ]

    api.bus.on("StartIdentityDeletion", started)
    api.bus.on("CancelIdentityDeletion", cancelled)


def test_an_identity_starts_and_cancels_its_deletion(api: FakeApi) -> None:
    _projected(api)
    me = api.party()
    started = api.client.post(PROCESSES, json={}, headers=me.headers)
    assert started.status_code == 201, started.text
    process = started.json()["result"]
    assert (process["status"], process["createdByDevice"]) == ("Active", me.device_id)
    [command] = api.bus.named("StartIdentityDeletion")
    assert command["address"] == me.address

    cancelled = api.client.put(f"{PROCESSES}/{process['id']}/Cancel", headers=me.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["result"]["status"] == "Cancelled"
    listed = api.client.get(PROCESSES, headers=me.headers).json()["result"]
    assert [(p["id"], p["status"]) for p in listed] == [(process["id"], "Cancelled")]


def test_another_identitys_process_does_not_exist_for_it(api: FakeApi) -> None:
    _projected(api)
    me, other = api.party(), api.party()
    process_id = api.client.post(PROCESSES, json={}, headers=me.headers).json()["result"]["id"]
    sent = len(api.bus.sent)
    for response in (
        api.client.get(f"{PROCESSES}/{process_id}", headers=other.headers),
        api.client.put(f"{PROCESSES}/{process_id}/Cancel", headers=other.headers),
    ):
        assert (response.status_code, error_code(response)) == (404, NOT_FOUND)
    assert len(api.bus.sent) == sent  # the cancellation never reached the decider
    assert api.client.get(PROCESSES, headers=other.headers).json()["result"] == []


def test_a_second_process_the_decider_refuses_keeps_its_code(api: FakeApi) -> None:
    me = api.party()
    api.bus.refuse("StartIdentityDeletion", 400, ONLY_ONE)
    response = api.client.post(PROCESSES, json={}, headers=me.headers)
    assert (response.status_code, error_code(response)) == (400, ONLY_ONE)


def test_a_grace_period_out_of_range_is_refused_before_any_command(api: FakeApi) -> None:
    me = api.party()
    for days in (0, 91):
        response = api.client.post(
            PROCESSES, json={"lengthOfGracePeriodInDays": days}, headers=me.headers
        )
        assert (response.status_code, error_code(response)) == (400, GRACE_OUT_OF_RANGE)
    assert api.bus.sent == []
