"""Retrying a step that must eventually happen (a read-model write, a sequenced batch, a
mailbox entry's delivery) for as long as it takes: Cassandra or Kafka being away only
delays the stream; skipping the step would lose data. Each step retried here is
idempotent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger("backbone.streams")

T = TypeVar("T")
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0


async def until_done(
    step: Callable[[], Awaitable[T]],
    failed: str,
    context: dict[str, Any] | None = None,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Run `step` until it succeeds, backing off from 0.1 s to 5 s; each failure is logged
    as `failed` with the error's type (never its text: it may hold data)."""
    delay = FIRST_DELAY_S
    while True:
        try:
            return await step()
        except Exception as exc:
            if on_retry is not None:
                on_retry()
            log.warning(
                f"{failed}; retrying",
                extra={**(context or {}), "error": type(exc).__name__, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
