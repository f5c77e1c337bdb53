"""A send that is not given up: the record is on the log when it returns."""

from __future__ import annotations

import faust

from store.retrying import until_done


async def send_durably(topic: faust.TopicT, key: bytes, value: bytes) -> None:
    """Sends and awaits the broker's acknowledgement, retrying until it comes: a failed send
    is retried here instead of being lost in the producer's background."""

    async def send() -> None:
        await (await topic.send(key=key, value=value))

    await until_done(send, "sending a mailbox entry failed")
