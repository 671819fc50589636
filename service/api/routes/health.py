"""Liveness, readiness and Prometheus metrics: no credentials, so probes can reach them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import AppDep
from service.usecases import health as health_checks

router = APIRouter(tags=["service"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "a backing server is down"}})
async def ready(app: AppDep) -> JSONResponse:
    """Ready when the database, the cache and the object store all answer; degraded (still
    200) when only the object store is down and a version is loaded."""
    body = await health_checks.readiness(app)
    return JSONResponse(body, status_code=503 if body["status"] == "unavailable" else 200)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
