"""`GET /api/v{1,2}/Version`: the Enmeshed Backbone major version this API speaks.

`@nmshd/transport` 7.x accepts backbone versions 6 to 7 (`supportedMin/MaxBackboneVersion`)
and reads only `majorVersion`; 7 is the consumer API whose routes are under `/api/v2`.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["version"])

BACKBONE_MAJOR_VERSION = 7


class BackboneVersion(BaseModel):
    majorVersion: int


class VersionResponse(BaseModel):
    result: BackboneVersion


@router.get("/Version", response_model=VersionResponse)
async def get_version() -> VersionResponse:
    return VersionResponse(result=BackboneVersion(majorVersion=BACKBONE_MAJOR_VERSION))
