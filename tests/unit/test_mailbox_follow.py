"""An open mailbox stream whose store fails ends by saying so, and gives its slot back."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra.cluster import NoHostAvailable

from api.routers import mailbox


class _Request:
    async def is_disconnected(self) -> bool:
        return False


class _Slot:
    released = False

    def release(self) -> None:
        self.released = True


async def test_a_store_failure_ends_the_stream_with_its_unavailable_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def store_down(*_: Any) -> list[Any]:
        raise NoHostAvailable("down", {})

    monkeypatch.setattr(mailbox, "_wait_for_more", store_down)
    slot = _Slot()
    # Stand-ins: the HTTP request, the stream's slot; the state and caller are only handed
    # to the (replaced) read.
    request: Any = _Request()
    given_slot: Any = slot
    unused: Any = None
    chunks = [
        chunk
        async for chunk in mailbox.follow(
            request, unused, unused, 0, given_slot, b": banner", lambda rows: "", b"unavailable\n\n"
        )
    ]
    assert chunks == [b": banner\n\n", b"unavailable\n\n"]
    assert slot.released
