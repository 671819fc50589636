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
from celery.exceptions import SoftTimeLimitExceeded
from redis.asyncio import Redis

from common.errors import DependencyError
from common.settings import Settings, get_settings
from embeddings.encoder import Encoder, configured
from experiments import results
from storage import builds, events
from storage.blob import BlobStore, open_store
from storage.db import create_pool
from workers import pipeline
from workers.app import celery_app
from workers.factory import (
    BUILD_TASK,
    EMBED_TASK,
    EXPERIMENTS_TASK,
    FILL_TASK,
    NIGHTLY_TASK,
    TRENDING_TASK,
)
from workers.pipeline import build_version, embed_missing

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
class Context:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    store: BlobStore


@asynccontextmanager
async def context() -> AsyncIterator[Context]:
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
        yield Context(SETTINGS, pool, redis, open_store(SETTINGS))
    finally:
        await redis.aclose()
        await pool.close()


def run(body: Callable[[Context], Awaitable[T]]) -> T:
    async def main() -> T:
        async with context() as ctx:
            return await body(ctx)

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
    _hold(None)  # a version held for its lists goes before this build's own takes the memory
    log.info("build %s: delivery %d (request %s)", build_id, self.request.retries + 1, request_id)
    try:
        run(lambda ctx: _build(ctx, build_id, activate, claims))
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
    run(lambda ctx: _fail(ctx, build_id, error))
    _fill_soon()  # the active version's lists stopped for this build: they go on


# The version whose lists this process is ranking, held in memory from its build (or loaded
# to go on after a restart), and the hot list they follow.
_filling: pipeline.Outcome | None = None


def _hold(outcome: pipeline.Outcome | None) -> None:
    global _filling
    _filling = outcome


def _fill_soon(version: int | None = None, until: float | None = None, after: float = 0) -> None:
    """Queue the next part of `version`'s lists (the active one's if None), `after` seconds
    from now; nothing is ranked if none is left."""
    try:
        fill_lists.apply_async(args=[version, until], countdown=after)
    except Exception as exc:  # the broker is down: the next build's end queues them again
        log.warning("could not queue the ranking of version %s's lists: %s", version, exc)


@celery_app.task(
    name=FILL_TASK, acks_late=True, time_limit=PART_SECONDS + 120, soft_time_limit=PART_SECONDS + 60
)
def fill_lists(version: int | None = None, until: float | None = None) -> int:
    """Rank one part of the lists of `version` (the active one if None) that its build had
    no time for (workers/pipeline.py), then queue the next, until epoch `until` (from now,
    `fill_seconds`): one part per task, so that whatever else is queued runs in between.
    Returns how many users the part holds."""
    deadline = time.time() + SETTINGS.index.fill_seconds if until is None else until
    started = [time.monotonic()]  # once the version is in memory: the part's own time

    def late() -> bool:
        return time.time() > deadline or time.monotonic() - started[0] > PART_SECONDS

    async def body(ctx: Context) -> tuple[int | None, int]:
        number = version if version is not None else await builds.active_version(ctx.pool)
        if number is None:
            return None, 0
        held = _filling
        if held is None or held.version != number:
            _hold(None)  # another version's: let it go before loading this one
            held = await pipeline.resume(ctx.pool, ctx.store, ctx.redis, ctx.settings, number)
            _hold(held)
        if held is None:
            return number, 0
        started[0] = time.monotonic()

        async def announce(filled: int, part: int) -> None:
            await events.publish(
                ctx.redis, ctx.settings.event_namespace, "lists_added", version=filled, part=part
            )

        ranked = await pipeline.fill_part(
            ctx.pool, ctx.store, ctx.settings, held, announce, late=late
        )
        return number, ranked

    try:
        number, ranked = run(body)
    except Exception as exc:  # PostgreSQL, Redis or the store down, say: try again
        if time.time() < deadline:
            log.warning("ranking version %s's lists: %s; trying again shortly", version, exc)
            _fill_soon(version, deadline, after=FILL_RETRY_SECONDS)
        else:
            _hold(None)
        return 0
    if ranked and time.time() < deadline:
        _fill_soon(number, deadline)
    else:
        _hold(None)  # done, or stopped: the version's memory goes
    return ranked


async def _build(ctx: Context, build_id: str, activate: bool, claims: list[int]) -> None:
    claimed = await builds.start_build(ctx.pool, build_id)
    if claimed is None:
        log.info("build %s is no longer queued or running; nothing to do", build_id)
        return
    attempt = int(claimed["attempts"])
    claims.append(attempt)
    allowed = ctx.settings.index.build_retries + 1
    if attempt > allowed:
        error = (
            f"gave up after {allowed} attempts: the last ones ended without an answer "
            "(their worker was lost: killed, or out of memory)"
        )
        log.error("build %s: %s", build_id, error)
        await builds.finish_build(ctx.pool, build_id, version=None, error=error, stage="starting")
        return
    await builds.report(ctx.pool, build_id, "retrying" if attempt > 1 else "starting", 0.0)

    async def report(stage: str, progress: float) -> None:
        await builds.report(ctx.pool, build_id, stage, progress)

    async def announce(version: int) -> None:
        await events.publish(
            ctx.redis, ctx.settings.event_namespace, "index_activated", version=version
        )

    async with _heartbeat(ctx, build_id):
        outcome = await build_version(
            ctx.pool,
            ctx.store,
            encoder(),
            ctx.settings,
            report,
            force=bool(claimed["force"]),
            activate=activate,
            on_activated=announce,
            share=_share,
            published=lambda: pipeline.published_lists(ctx.redis, ctx.settings),
        )
    await builds.finish_build(
        ctx.pool, build_id, version=outcome.version, error=None, stage=outcome.final
    )
    if outcome.version is not None and outcome.final == "done":
        await _refresh_trending(ctx)
        if outcome.built is not None:
            _hold(outcome)


@asynccontextmanager
async def _heartbeat(ctx: Context, build_id: str) -> AsyncIterator[None]:
    """Keep the build's heartbeat fresh while its body runs (CPU work runs in threads)."""
    every = max(ctx.settings.index.heartbeat_timeout / 4, 0.5)

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(DependencyError):
                await builds.heartbeat(ctx.pool, build_id)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _fail(ctx: Context, build_id: str, error: str) -> None:
    build = await builds.get_build(ctx.pool, build_id)
    await builds.finish_build(ctx.pool, build_id, version=None, error=error, stage=build["stage"])


@celery_app.task(name=NIGHTLY_TASK, acks_late=True, time_limit=120)
def nightly_build() -> str:
    """Queue the nightly build (beat runs this); like any build it goes live only through
    the quality gate. Returns the build's id (the one already in flight, if any)."""

    async def body(ctx: Context) -> tuple[dict[str, Any], bool]:
        return await builds.request_build(
            ctx.pool,
            "nightly",
            False,
            builds.QUEUE_TIMEOUT_SECONDS,
            ctx.settings.index.heartbeat_timeout,
        )

    build, created = run(body)
    if created:
        build_index.delay(build["build_id"])
    return str(build["build_id"])


@celery_app.task(name=EMBED_TASK, acks_late=True, max_retries=3, time_limit=600)
def embed_items(item_ids: list[str]) -> int:
    """Embed the given items now if their text changed, so the next build has less to do;
    a long list is shared with the other workers in pieces."""

    async def body(ctx: Context) -> int:
        async def ignore(_stage: str, _progress: float) -> None:
            return None

        chunk = ctx.settings.embedding.chunk_items
        return await embed_missing(ctx.pool, encoder(), ignore, item_ids, share=_share, chunk=chunk)

    return run(body)


async def _share(item_ids: list[str]) -> None:
    """Queue a piece of embedding work for whichever worker is free."""
    await asyncio.to_thread(embed_items.apply_async, args=[item_ids])


@celery_app.task(name=TRENDING_TASK, acks_late=True, time_limit=300)
def refresh_trending() -> None:
    """Recompute every trending list of the default window (beat runs this periodically)."""

    async def body(ctx: Context) -> None:
        await _refresh_trending(ctx)

    run(body)


async def _refresh_trending(ctx: Context) -> None:
    """The default window's lists, for every API process to hold."""
    hours = ctx.settings.index.trending_window_hours
    await pipeline.refresh_trending(ctx.pool, ctx.redis, ctx.settings, hours)


@celery_app.task(name=EXPERIMENTS_TASK, acks_late=True, time_limit=300)
def experiments_tick() -> list[str]:
    """Copy experiment impressions to PostgreSQL, store every running experiment's results
    and apply guardrails (beat runs this); returns the variants it stopped."""

    async def body(ctx: Context) -> list[str]:
        return await results.tick(
            ctx.pool, ctx.redis, ctx.settings.experiment, ctx.settings.event_namespace
        )

    return run(body)
