"""Index builds and versions, for ops: queue a build, watch it, list versions, roll back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from common.models import (
    Activated,
    Build,
    BuildIn,
    BuildList,
    VersionDetail,
    VersionList,
)
from service.api.deps import AppDep, Guarded, require
from service.api.metrics import request_id_of
from service.api.routes import API, ERRORS
from service.usecases import versions

# Versions are bigint in PostgreSQL: a larger number is bad input, not a server error.
VersionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/index",
    tags=["index"],
    dependencies=[require("admin")],
    responses=ERRORS,
)


@router.post("/builds", status_code=202)
async def request_build(request: Request, app: AppDep, body: BuildIn | None = None) -> Build:
    """Queue a build; while one is queued or running, that one is returned instead."""
    return await versions.request_build(app, body or BuildIn(), request_id_of(request.scope))


@router.get("/builds")
async def list_builds(
    app: AppDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> BuildList:
    """A page of builds, newest first; `next_cursor`, where there are more, asks for the
    next page."""
    return await versions.list_builds(app, limit, cursor)


@router.get("/builds/{build_id}")
async def get_build(build_id: Annotated[str, Path(max_length=64)], app: AppDep) -> Build:
    """A build's state, stage and progress (0..1); the version it made once it succeeded."""
    return await versions.get_build(app, build_id)


@router.get("/versions")
async def list_versions(app: AppDep) -> VersionList:
    """Kept versions, newest first, and which one is active."""
    return await versions.list_versions(app)


@router.get("/versions/{version}")
async def get_version(version: VersionId, app: AppDep) -> VersionDetail:
    """One version with its manifest, and the lists ranked since it went live."""
    return await versions.get_version(app, version)


@router.post("/versions/{version}/activate")
async def activate(version: VersionId, app: AppDep) -> Activated:
    """Serve `version` everywhere (an older one is a rollback). Its files are downloaded and
    verified before anything changes, so a refused activation leaves the active version as
    it was; this process swaps before answering, the others within seconds."""
    return await versions.activate(app, version)
