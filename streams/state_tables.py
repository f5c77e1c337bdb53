"""The decider state tables: one per aggregate type, keyed like its command topic (one
partition, one writer).

Changelogs hold addresses, so their values are sealed like events (streams/table_codec.py).
faust takes a table's serializer from its value type only, so the changelog topic (which
recovery decodes with) and the table's own writes are both given the codec here.
"""

from __future__ import annotations

from typing import Any

import faust


def sealed_table(app: faust.App, app_id: str, name: str, *, partitions: int, codec: str) -> Any:
    """Registers the table `name` on `app`, its values sealed with the codec registered
    under `codec`."""
    table: Any = app.Table(
        name,
        default=None,
        partitions=partitions,
        changelog_topic=app.topic(
            f"{app_id}-{name}-changelog",
            key_serializer="json",
            value_serializer=codec,
            partitions=partitions,
            compacting=True,
            acks=False,
            internal=True,
        ),
    )
    table.value_serializer = codec
    return table
