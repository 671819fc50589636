"""Index builds and versions, for ops: queue a build, watch it, list versions, roll back."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request

from common.errors import DependencyError, InvalidInput, NotFound
from common.models import (
    Activated,
    Build,
    BuildIn,
    ListsAfterBuild,
    VersionDetail,
    VersionList,
    VersionSummary,
)
from indexing.artifacts import CorruptArtifact
from service.api.deps import Guarded, ResourcesDep, require
from service.api.metrics import request_id_of
from service.api.routes import API, ERRORS
from storage import builds
from workers.factory import BUILD_TASK

# Versions are bigint in PostgreSQL: a larger number is bad input, not a server error.
VersionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
STORE_CHECK_SECONDS = 3.0
router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/index",
    tags=["index"],
    dependencies=[require("admin")],
    responses=ERRORS,
)


@router.post("/builds", status_code=202)
async def request_build(request: Request, res: ResourcesDep, body: BuildIn | None = None) -> Build:
    """Queue a build; while one is queued or running, that one is returned instead."""
    body = body or BuildIn()
    build, created = await builds.request_build(
        res.pool,
        body.reason,
        body.force,
        builds.QUEUE_TIMEOUT_SECONDS,
        res.settings.index.heartbeat_timeout,
    )
    if created:
        try:
            await asyncio.to_thread(
                res.celery.send_task,
                BUILD_TASK,
                args=[build["build_id"]],
                kwargs={"activate": body.activate, "request_id": request_id_of(request.scope)},
            )
        except Exception as exc:
            await builds.finish_build(
                res.pool,
                build["build_id"],
                version=None,
                error=f"could not queue: {exc}",
                stage="queueing",
            )
            raise DependencyError(f"the task queue is unavailable: {exc}") from exc
    return Build(**build)


@router.get("/builds/{build_id}")
async def get_build(build_id: Annotated[str, Path(max_length=64)], res: ResourcesDep) -> Build:
    """A build's state, stage and progress (0..1); the version it made once it succeeded."""
    await builds.fail_stale(
        res.pool,
        queue_timeout=builds.QUEUE_TIMEOUT_SECONDS,
        heartbeat_timeout=res.settings.index.heartbeat_timeout,
    )
    return Build(**await builds.get_build(res.pool, build_id))


@router.get("/versions")
async def list_versions(res: ResourcesDep) -> VersionList:
    """Kept versions, newest first, and which one is active."""
    active = await builds.active_version(res.pool)
    return VersionList(
        active=active,
        versions=[
            VersionSummary(**v, active=v["version"] == active)
            for v in await builds.list_versions(res.pool)
        ],
    )


@router.get("/versions/{version}")
async def get_version(version: VersionId, res: ResourcesDep) -> VersionDetail:
    """One version with its manifest, and the lists ranked since it went live."""
    active = await builds.active_version(res.pool)
    found = await builds.get_version(res.pool, version)
    parts = await builds.lists_parts(res.pool, version)
    after = ListsAfterBuild(parts=len(parts), users=sum(p["users"] for p in parts))
    return VersionDetail(**found, active=version == active, lists_after_build=after)


@router.post("/versions/{version}/activate")
async def activate(version: VersionId, res: ResourcesDep) -> Activated:
    """Serve `version` everywhere (an older one is a rollback). Its files are downloaded and
    verified before anything changes, so a refused activation leaves the active version as
    it was; this process swaps before answering, the others within seconds."""
    await builds.get_version(res.pool, version)
    # A hung store would hold the download for its full timeouts: ask it first.
    await res.store_probe.check(STORE_CHECK_SECONDS)
    try:
        loaded = await res.serving.prepare(version)
    except (CorruptArtifact, NotFound) as exc:
        raise InvalidInput(f"version {version} cannot be served: {exc}") from exc
    await builds.activate(res.pool, version)
    await res.serving.serve(loaded)
    await res.serving.announce("index_activated", version=version)
    return Activated(active=version)
