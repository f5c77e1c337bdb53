"""`GET /api/v{1,2}/Announcements` and `GET /api/v{1,2}/Tags`: the operator's notices to
every identity and the attribute tag catalogue, which Enmeshed clients read.

This backbone has no announcements and no tag catalogue yet, so both answer with an empty
one in upstream's shape (an empty list; no languages and no tags), which is what a client
of an operator that published none sees.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel

from api.deps import Authenticated

router = APIRouter(tags=["announcements and tags"])

# The tag collection never changes while there is none: one constant entity tag.
TAGS_ETAG = '"tags-empty-v1"'


class AnnouncementsResponse(BaseModel):
    result: list[dict[str, object]]


@router.get("/Announcements", response_model=AnnouncementsResponse)
async def announcements(
    caller: Authenticated,
    language: Annotated[str, Query(min_length=2, max_length=2, pattern=r"^[a-z]{2}$")] = "en",
) -> AnnouncementsResponse:
    return AnnouncementsResponse(result=[])


class TagCollection(BaseModel):
    supportedLanguages: list[str]
    tagsForAttributeValueTypes: dict[str, dict[str, object]]


class TagsResponse(BaseModel):
    result: TagCollection


@router.get(
    "/Tags",
    response_model=None,
    responses={
        200: {"model": TagsResponse, "description": "The tag catalogue (none yet)"},
        304: {"description": "Not modified: `If-None-Match` names the current `ETag`"},
    },
)
async def tags(
    if_none_match: Annotated[str | None, Header(alias="if-none-match", max_length=200)] = None,
) -> TagsResponse | Response:
    if if_none_match == TAGS_ETAG:
        return Response(status_code=304, headers={"ETag": TAGS_ETAG})
    body = TagsResponse(result=TagCollection(supportedLanguages=[], tagsForAttributeValueTypes={}))
    return Response(
        body.model_dump_json(), media_type="application/json", headers={"ETag": TAGS_ETAG}
    )
