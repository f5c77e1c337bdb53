"""Enmeshed-style paging: `pageNumber` (from 1) and `pageSize`, answered with `pagination`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import StringConstraints

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    def envelope(self, items: list[Any]) -> dict[str, Any]:
        start = (self.number - 1) * self.size
        return {
            "result": items[start : start + self.size],
            "pagination": {
                "pageNumber": self.number,
                "pageSize": self.size,
                "totalPages": max(1, math.ceil(len(items) / self.size)),
                "totalRecords": len(items),
            },
        }


async def _page(  # async: see api/deps.py
    page_number: Annotated[int, Query(alias="pageNumber", ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> Page:
    return Page(page_number, page_size)


Paging = Annotated[Page, Depends(_page)]
# Enmeshed ids: three letters and 17 alphanumerics.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}[A-Za-z0-9]{17}$")]
Ids = Annotated[list[Id] | None, Query(alias="ids", max_length=MAX_PAGE_SIZE)]
