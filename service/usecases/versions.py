"""Index builds and versions, for ops: queue a build, watch it, list versions, roll back."""

from __future__ import annotations

import asyncio

from common import tracing
from common.errors import DependencyError, InvalidInput, NotFound
from common.models import (
    Activated,
    Build,
    BuildIn,
    BuildList,
    ListsAfterBuild,
    VersionDetail,
    VersionList,
    VersionSummary,
)
from indexing.artifacts import CorruptArtifact
from service.application import Application
from storage import builds
from workers.factory import BUILD_TASK

# An activation asks the store first: a hung one would hold the download for its timeouts.
STORE_CHECK_SECONDS = 3.0


async def request_build(app: Application, body: BuildIn, request_id: str | None) -> Build:
    """Queue a build; while one is queued or running, that one is returned instead.
    `request_id` follows the build into the worker's logs."""
    build, created = await builds.request_build(
        app.pool,
        body.reason,
        body.force,
        builds.QUEUE_TIMEOUT_SECONDS,
        app.settings.index.heartbeat_timeout,
    )
    if created:
        try:
            await asyncio.to_thread(
                app.celery.send_task,
                BUILD_TASK,
                args=[build["build_id"]],
                kwargs={"activate": body.activate, "request_id": request_id},
                # The build continues this request's trace (common/tracing.py).
                headers=tracing.task_headers(),
            )
        except Exception as exc:
            await builds.finish_build(
                app.pool,
                build["build_id"],
                version=None,
                error=f"could not queue: {exc}",
                stage="queueing",
            )
            raise DependencyError(f"the task queue is unavailable: {exc}") from exc
    return Build(**build)


async def get_build(app: Application, build_id: str) -> Build:
    """A build's state, stage and progress; one whose worker fell silent is failed first."""
    await builds.fail_stale(
        app.pool,
        queue_timeout=builds.QUEUE_TIMEOUT_SECONDS,
        heartbeat_timeout=app.settings.index.heartbeat_timeout,
    )
    return Build(**await builds.get_build(app.pool, build_id))


async def list_builds(app: Application, limit: int, cursor: str | None = None) -> BuildList:
    """A page of builds, newest first; stale ones are failed first, as `get_build` does."""
    await builds.fail_stale(
        app.pool,
        queue_timeout=builds.QUEUE_TIMEOUT_SECONDS,
        heartbeat_timeout=app.settings.index.heartbeat_timeout,
    )
    found, next_cursor = await builds.recent_builds(app.pool, limit, cursor)
    return BuildList(builds=[Build(**b) for b in found], next_cursor=next_cursor)


async def list_versions(app: Application) -> VersionList:
    """Kept versions, newest first, and which one is active."""
    active = await builds.active_version(app.pool)
    return VersionList(
        active=active,
        versions=[
            VersionSummary(**v, active=v["version"] == active)
            for v in await builds.list_versions(app.pool)
        ],
    )


async def get_version(app: Application, version: int) -> VersionDetail:
    """One version with its manifest, and the lists ranked since it went live."""
    active = await builds.active_version(app.pool)
    found = await builds.get_version(app.pool, version)
    parts = await builds.lists_parts(app.pool, version)
    after = ListsAfterBuild(parts=len(parts), users=sum(p["users"] for p in parts))
    return VersionDetail(**found, active=version == active, lists_after_build=after)


async def activate(app: Application, version: int) -> Activated:
    """Serve `version` everywhere (an older one is a rollback). Its files are downloaded and
    verified before anything changes, so a refused activation leaves the active version as
    it was; this process swaps before answering, the others within seconds."""
    await builds.get_version(app.pool, version)
    await app.store_probe.check(STORE_CHECK_SECONDS)
    try:
        loaded = await app.serving.prepare(version)
    except (CorruptArtifact, NotFound) as exc:
        raise InvalidInput(f"version {version} cannot be served: {exc}") from exc
    await builds.activate(app.pool, version)
    await app.serving.serve(loaded)
    await app.serving.announce("index_activated", version=version)
    return Activated(active=version)
