"""Celery tasks: each reads its inputs, calls into indexing/, and records the outcome.

Tasks are synchronous (Celery's model); each runs its async body in a fresh event loop with
its own connections, since pools cannot cross loops or forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from common.errors import DependencyError
from common.settings import Settings, get_settings
from embeddings.encoder import Encoder, configured
from experiments import results
from service.application import close_application, open_application
from service.usecases import exports
from storage import builds
from storage import exports as stored_exports
from storage.blob import BlobStore, open_store
from storage.db import create_pool
from workers import pipeline
from workers.app import celery_app
from workers.context import BuildContext
from workers.embedding import embed_missing
from workers.factory import (
    BUILD_TASK,
    EMBED_TASK,
    EXPERIMENTS_TASK,
    EXPORT_TASK,
    FILL_TASK,
    NIGHTLY_TASK,
    TRENDING_TASK,
)
from workers.lists import Filler
from workers.pipeline import build_version

log = logging.getLogger(__name__)
T = TypeVar("T")
SETTINGS = get_settings()
# A part of the lists ranked after a build stops growing after this long; its task's soft
# time limit is a minute beyond (one batch of users at most).
PART_SECONDS = 300
# A part that failed (a dependency down) is tried again this long after.
FILL_RETRY_SECONDS = 60


@lru_cache(maxsize=1)
def encoder() -> Encoder:
    """Loaded once per worker process, on its first task."""
    return configured(SETTINGS.embedding)


@dataclass
class Connections:
    """What a task runs with: the settings, and connections opened for it alone."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    store: BlobStore


@asynccontextmanager
async def connect() -> AsyncIterator[Connections]:
    pool = await create_pool(
        SETTINGS.database.model_copy(
            update={
                "pool_min": 1,
                "pool_max": 3,
                "command_timeout": float(SETTINGS.index.build_time_limit),
            }
        ),
        attempts=3,
    )
    redis: Redis = Redis.from_url(SETTINGS.redis.url)
    try:
        yield Connections(SETTINGS, pool, redis, open_store(SETTINGS))
    finally:
        await redis.aclose()
        await pool.close()


def run(body: Callable[[Connections], Awaitable[T]]) -> T:
    async def main() -> T:
        async with connect() as conns:
            return await body(conns)

    return asyncio.run(main())


@celery_app.task(
    name=BUILD_TASK,
    bind=True,
    acks_late=True,
    max_retries=SETTINGS.index.build_retries,
    time_limit=SETTINGS.index.build_time_limit + 60,
    soft_time_limit=SETTINGS.index.build_time_limit,
)
def build_index(
    self: Any, build_id: str, activate: bool = True, request_id: str | None = None
) -> None:
    """Build a version for `build_id`, reporting stage and progress into its builds row.
    `request_id` is the id of the HTTP request that asked for it, for the logs."""
    # Attempts are counted in the build's row: a redelivery after a lost worker comes back
    # with Celery's retry count unchanged.
    claims: list[int] = []
    # A version held for its lists goes before this build's own takes the memory.
    fill_lists.filler.keep(None)
    log.info("build %s: delivery %d (request %s)", build_id, self.request.retries + 1, request_id)
    try:
        run(lambda conns: _build(conns, build_id, activate, claims))
        _fill_soon()
        return
    except DependencyError as exc:
        attempt = max([self.request.retries + 1, *claims])
        if attempt <= SETTINGS.index.build_retries:
            log.warning("build %s (request %s): %s; retrying", build_id, request_id, exc)
            raise self.retry(exc=exc, countdown=SETTINGS.index.build_retry_seconds) from exc
        error = f"gave up after {attempt} attempts: {exc}"
    except SoftTimeLimitExceeded:
        error = "the build ran past its time limit"
    except Exception as exc:
        log.exception("build %s (request %s) failed", build_id, request_id)
        error = f"{type(exc).__name__}: {exc}"
    run(lambda conns: _fail(conns, build_id, error))
    _fill_soon()  # the active version's lists stopped for this build: they go on


async def _build(conns: Connections, build_id: str, activate: bool, claims: list[int]) -> None:
    claimed = await builds.start_build(conns.pool, build_id)
    if claimed is None:
        log.info("build %s is no longer queued or running; nothing to do", build_id)
        return
    attempt = int(claimed["attempts"])
    claims.append(attempt)
    allowed = conns.settings.index.build_retries + 1
    if attempt > allowed:
        error = (
            f"gave up after {allowed} attempts: the last ones ended without an answer "
            "(their worker was lost: killed, or out of memory)"
        )
        log.error("build %s: %s", build_id, error)
        await builds.finish_build(conns.pool, build_id, version=None, error=error, stage="starting")
        return
    await builds.report(conns.pool, build_id, "retrying" if attempt > 1 else "starting", 0.0)
    context = BuildContext(
        conns.pool, build_id, conns.redis, conns.settings.event_namespace, queue=celery_app
    )
    async with _heartbeat(conns.settings, lambda: builds.heartbeat(conns.pool, build_id)):
        try:
            outcome = await build_version(
                conns.pool,
                conns.store,
                encoder(),
                conns.settings,
                context,
                force=bool(claimed["force"]),
                activate=activate,
            )
        finally:
            context.finished()
    await builds.finish_build(
        conns.pool, build_id, version=outcome.version, error=None, stage=outcome.final
    )
    if outcome.version is not None and outcome.final == "done":
        await _refresh_trending(conns)
        if outcome.filling is not None:
            fill_lists.filler.keep(outcome.filling)


def _fill_soon(version: int | None = None, until: float | None = None, after: float = 0) -> None:
    """Queue the next part of `version`'s lists (the active one's if None), `after` seconds
    from now; nothing is ranked if none is left."""
    try:
        fill_lists.apply_async(args=[version, until], countdown=after)
    except Exception as exc:  # the broker is down: the next build's end queues them again
        log.warning("could not queue the ranking of version %s's lists: %s", version, exc)


class FillTask(Task):  # type: ignore[misc]
    """The task that ranks the lists a version's build left, one part per run. Celery makes
    one instance of a task in each worker process: this one keeps that process's `Filler`,
    which holds the version in memory from one part to the next (loading a version of 1M
    items and verifying its files takes minutes; a part, half of one)."""

    def __init__(self) -> None:
        self.filler = Filler()


@celery_app.task(
    name=FILL_TASK,
    base=FillTask,
    bind=True,
    acks_late=True,
    time_limit=PART_SECONDS + 120,
    soft_time_limit=PART_SECONDS + 60,
)
def fill_lists(self: FillTask, version: int | None = None, until: float | None = None) -> int:
    """Rank one part of the lists of `version` (the active one if None) that its build left
    (workers/lists.py), then queue the next, until epoch `until` (from now, `fill_seconds`):
    one part per task, so that whatever else is queued runs in between. Returns how many
    users the part holds."""
    deadline = time.time() + SETTINGS.index.fill_seconds if until is None else until

    async def body(conns: Connections) -> tuple[int | None, int]:
        number = version if version is not None else await builds.active_version(conns.pool)
        if number is None:
            return None, 0
        context = BuildContext(redis=conns.redis, namespace=conns.settings.event_namespace)
        ranked = await self.filler.rank_next(
            conns.pool,
            conns.store,
            conns.settings,
            context,
            number,
            until=deadline,
            part_seconds=PART_SECONDS,
        )
        return number, ranked

    try:
        number, ranked = run(body)
    except Exception as exc:  # PostgreSQL, Redis or the store down, say: try again
        if time.time() < deadline:
            log.warning("ranking version %s's lists: %s; trying again shortly", version, exc)
            _fill_soon(version, deadline, after=FILL_RETRY_SECONDS)
        else:
            self.filler.keep(None)
        return 0
    if ranked and time.time() < deadline:
        _fill_soon(number, deadline)
    else:
        self.filler.keep(None)  # done, or stopped: the version's memory goes
    return ranked


@asynccontextmanager
async def _heartbeat(
    settings: Settings, send: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Keep a job's heartbeat fresh (`send`) while its body runs (CPU work runs in threads)."""
    every = max(settings.index.heartbeat_timeout / 4, 0.5)

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(DependencyError):
                await send()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@celery_app.task(
    name=EXPORT_TASK,
    bind=True,
    acks_late=True,
    max_retries=SETTINGS.index.build_retries,
    time_limit=SETTINGS.index.build_time_limit + 60,
    soft_time_limit=SETTINGS.index.build_time_limit,
)
def export_lists(self: Any, export_id: str) -> None:
    """Write an export's JSON lines (service/usecases/exports.py). A worker lost meanwhile
    has the task delivered again (acks late), and the export goes on from its last part."""
    try:
        asyncio.run(_export(export_id))
        return
    except DependencyError as exc:
        if self.request.retries < SETTINGS.index.build_retries:
            log.warning("export %s: %s; retrying", export_id, exc)
            raise self.retry(exc=exc, countdown=SETTINGS.index.build_retry_seconds) from exc
        error = f"gave up after {self.request.retries + 1} attempts: {exc}"
    except SoftTimeLimitExceeded:
        error = "the export ran past its time limit (INDEX_BUILD_TIME_LIMIT)"
    except Exception as exc:
        log.exception("export %s failed", export_id)
        error = f"{type(exc).__name__}: {exc}"
    run(lambda conns: stored_exports.finish(conns.pool, export_id, error))


async def _export(export_id: str) -> None:
    """Run the export's use case in an application of this worker's own: the lists are
    made by the code that answers the live endpoints, over the active version."""
    app = await open_application(SETTINGS, CollectorRegistry(), serves_requests=False)
    try:
        active = await builds.active_version(app.pool)
        if active is not None and app.serving.current is None:
            raise DependencyError(f"the active version {active} could not be loaded")
        async with _heartbeat(SETTINGS, lambda: stored_exports.heartbeat(app.pool, export_id)):
            await exports.write(app, export_id)
    finally:
        await close_application(app)


async def _fail(conns: Connections, build_id: str, error: str) -> None:
    build = await builds.get_build(conns.pool, build_id)
    await builds.finish_build(conns.pool, build_id, version=None, error=error, stage=build["stage"])


@celery_app.task(name=NIGHTLY_TASK, acks_late=True, time_limit=120)
def nightly_build() -> str:
    """Queue the nightly build (beat runs this); like any build it goes live only through
    the quality gate. Returns the build's id (the one already in flight, if any)."""

    async def body(conns: Connections) -> tuple[dict[str, Any], bool]:
        return await builds.request_build(
            conns.pool,
            "nightly",
            False,
            builds.QUEUE_TIMEOUT_SECONDS,
            conns.settings.index.heartbeat_timeout,
        )

    build, created = run(body)
    if created:
        build_index.delay(build["build_id"])
    return str(build["build_id"])


@celery_app.task(name=EMBED_TASK, acks_late=True, max_retries=3, time_limit=600)
def embed_items(item_ids: list[str]) -> int:
    """Embed the given items now if their text changed, so the next build has less to do;
    a long list is shared with the other workers in pieces."""

    async def body(conns: Connections) -> int:
        context = BuildContext(queue=celery_app)
        chunk = conns.settings.embedding.chunk_items
        return await embed_missing(conns.pool, encoder(), context, item_ids, chunk=chunk)

    return run(body)


@celery_app.task(name=TRENDING_TASK, acks_late=True, time_limit=300)
def refresh_trending() -> None:
    """Recompute every trending list of the default window (beat runs this periodically)."""

    async def body(conns: Connections) -> None:
        await _refresh_trending(conns)

    run(body)


async def _refresh_trending(conns: Connections) -> None:
    """The default window's lists, for every API process to hold."""
    hours = conns.settings.index.trending_window_hours
    await pipeline.refresh_trending(conns.pool, conns.redis, conns.settings, hours)


@celery_app.task(name=EXPERIMENTS_TASK, acks_late=True, time_limit=300)
def experiments_tick() -> list[str]:
    """Copy experiment impressions to PostgreSQL, store every running experiment's results
    and apply guardrails (beat runs this); returns the variants it stopped."""

    async def body(conns: Connections) -> list[str]:
        return await results.tick(
            conns.pool, conns.redis, conns.settings.experiment, conns.settings.event_namespace
        )

    return run(body)
