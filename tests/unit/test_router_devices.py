"""`/Devices` against a fake bus and read store: a device sees and changes only its own
identity's devices, and a deleted device's token stops working."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from store.readmodels.identities import Device
from tests.unit.fake_api import NOW, FakeApi, error_code, running

WRONG_PASSWORD = "error.platform.validation.device.wrongPassword"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from running()


def test_a_device_lists_its_identitys_active_devices_only(api: FakeApi) -> None:
    me, other = api.party(), api.party()
    devices = api.reads.identities.devices
    devices[me.address, "DVC10000000000000001"] = Device(
        "DVC10000000000000001", "USR10000000000000001", NOW, me.device_id, None
    )
    devices[me.address, "DVC10000000000000002"] = Device(
        "DVC10000000000000002", "USR10000000000000002", NOW, me.device_id, NOW
    )
    response = api.client.get("/api/v1/Devices", headers=me.headers)
    assert response.status_code == 200, response.text
    listed = {d["id"]: d for d in response.json()["result"]}
    assert set(listed) == {me.device_id, "DVC10000000000000001"}
    assert listed["DVC10000000000000001"]["createdByDevice"] == me.device_id
    assert other.device_id not in listed


def test_a_device_reads_itself(api: FakeApi) -> None:
    me = api.party()
    response = api.client.get("/api/v1/Devices/Self", headers=me.headers)
    assert response.status_code == 200, response.text
    own = response.json()["result"]
    assert (own["id"], own["username"], own["createdByDevice"]) == (
        me.device_id,
        me.username,
        None,
    )


def test_a_password_change_needs_the_old_password(api: FakeApi) -> None:
    me = api.party()
    wrong = {"oldPassword": "not it", "newPassword": "a new password"}
    response = api.client.put("/api/v1/Devices/Self/Password", json=wrong, headers=me.headers)
    assert (response.status_code, error_code(response)) == (400, WRONG_PASSWORD)
    assert api.bus.sent == []
    right = {"oldPassword": "password1", "newPassword": "a new password"}
    response = api.client.put("/api/v1/Devices/Self/Password", json=right, headers=me.headers)
    assert response.status_code == 204, response.text
    [command] = api.bus.named("ChangeDevicePassword")
    assert (command["address"], command["device_id"]) == (me.address, me.device_id)
    assert command["password_hash"] == "hashed:a new password"


def test_a_device_the_decider_will_not_delete_is_answered_with_its_code(api: FakeApi) -> None:
    me = api.party()
    code = "error.platform.validation.device.deviceCannotDeleteItself"
    api.bus.refuse("DeleteDevice", 400, code)
    response = api.client.delete(f"/api/v1/Devices/{me.device_id}", headers=me.headers)
    assert (response.status_code, error_code(response)) == (400, code)


def test_a_deleted_devices_token_stops_working_at_once(api: FakeApi) -> None:
    me = api.party()
    assert api.client.get("/api/v1/Devices", headers=me.headers).status_code == 200
    key = (me.address, me.device_id)
    devices = api.reads.identities.devices
    devices[key] = dataclasses.replace(devices[key], deleted_at=NOW)
    response = api.client.get("/api/v1/Devices", headers=me.headers)
    assert (response.status_code, error_code(response)) == (401, "error.platform.unauthorized")
