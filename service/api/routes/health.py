"""Liveness, readiness and Prometheus metrics: no credentials, so probes can reach them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import ResourcesDep
from storage import cache as redis_cache
from storage import db

router = APIRouter(tags=["service"])

CHECK_SECONDS = 2.0


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "a backing server is down"}})
async def ready(res: ResourcesDep) -> JSONResponse:
    """Ready when the database, the cache and the object store all answer; degraded (still
    200) when only the object store is down and a version is loaded."""

    async def database() -> None:
        await db.ping(res.pool)

    async def cache() -> None:
        await redis_cache.ping(res.redis)

    async def object_store() -> None:
        await res.store_probe.ping()

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "database": database,
        "cache": cache,
        "object_store": object_store,
    }
    outcomes = await asyncio.gather(*(_probe(check) for check in checks.values()))
    results = dict(zip(checks, outcomes, strict=True))
    failed = {name for name, outcome in results.items() if outcome != "ok"}
    # S3 only supplies new versions: with one loaded, the process still answers everything.
    degraded = failed == {"object_store"} and res.serving.current is not None
    status = "ready" if not failed else "degraded" if degraded else "unavailable"
    body: dict[str, Any] = {
        "status": status,
        "checks": results,
        "index_version": res.serving.current.version if res.serving.current else None,
    }
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


async def _probe(check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_SECONDS:.0f}s"
    except Exception as exc:
        return f"error: {exc}"
    return "ok"


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
