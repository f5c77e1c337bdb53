"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import State
from api.schemas import Health, Readiness, documented
from backbone.connections import kafka_client_kwargs

router = APIRouter(tags=["operations"])


@router.get("/health", responses=documented(Health))
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={
        200: {"model": Readiness, "description": "kafka and cassandra: ok"},
        503: {"model": Readiness, "description": "one of them is unreachable"},
    },
)
async def ready(state: State) -> JSONResponse:
    checks = {"kafka": await _kafka_ok(state.settings.cluster.kafka_bootstrap)}
    try:
        await asyncio.wait_for(state.reads.store.reachable(), timeout=3)
        checks["cassandra"] = True
    except Exception:
        checks["cassandra"] = False
    ok = all(checks.values())
    body = {name: "ok" if good else "unreachable" for name, good in checks.items()}
    headers = {} if ok else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


async def _kafka_ok(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(bootstrap), request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=3)
        await asyncio.wait_for(admin.describe_cluster(), timeout=3)
        return True
    except Exception:
        return False
    finally:
        await admin.close()


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
