"""What a build tells the service around it, and asks of it, besides PostgreSQL and the
object store: one object the build is given (workers/pipeline.py), so that the pipeline
never calls back into the task module."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg
from celery import Celery
from redis.asyncio import Redis

from common import tracing
from common.errors import CacheUnavailable
from indexing import trending
from storage import builds, events
from storage import trending as trending_store
from workers.factory import EMBED_TASK

log = logging.getLogger(__name__)


@dataclass
class BuildContext:
    """Where a build (or an embedding task) says what it is doing, and what it asks of the
    rest of the service:

    - `pool` and `build_id`: the builds row its stage and progress are written to;
    - `redis` and `namespace`: the event channel it announces a version activated on, and
      each part of a version's lists; and the trending lists the API serves now;
    - `queue`: the Celery app through which it shares pieces of embedding with any worker.

    Each is optional: `BuildContext()` builds in this process and tells no one (tests, the
    bench), computes the trending lists itself and embeds every item here. `stages` keeps
    each stage reported, in order."""

    pool: asyncpg.Pool | None = None
    build_id: str | None = None
    redis: Redis | None = None
    namespace: str = ""
    queue: Celery | None = None
    stages: list[str] = field(default_factory=list)
    # A span per stage, where tracing is on (common/tracing.py); `finished` ends the last.
    traced: tracing.Stages = field(default_factory=tracing.Stages)

    def finished(self) -> None:
        self.traced.close()

    async def report(self, stage: str, progress: float) -> None:
        """The build is at `stage`, `progress` (0 to 1) of the way through."""
        if not self.stages or self.stages[-1] != stage:
            self.stages.append(stage)
            self.traced.enter(stage)
        if self.pool is not None and self.build_id is not None:
            await builds.report(self.pool, self.build_id, stage, progress)

    async def activated(self, version: int) -> None:
        """`version` is active: every API process loads it."""
        if self.redis is not None:
            await events.publish(self.redis, self.namespace, "index_activated", version=version)

    async def lists_added(self, version: int, part: int) -> None:
        """Part `part` of `version`'s lists is recorded: a process serving the version reads
        it in. Unannounced (Redis down), the API processes find it by their poll."""
        if self.redis is None:
            return
        try:
            await events.publish(
                self.redis, self.namespace, "lists_added", version=version, part=part
            )
        except CacheUnavailable as exc:
            log.warning("could not announce part %d of version %d's lists: %s", part, version, exc)

    @property
    def shares(self) -> bool:
        """Whether pieces of embedding can be queued for other workers."""
        return self.queue is not None

    async def share(self, item_ids: list[str]) -> None:
        """Queue the embedding of `item_ids` for whichever worker is free."""
        if self.queue is not None:
            await asyncio.to_thread(self.queue.send_task, EMBED_TASK, args=[item_ids])

    async def published_trending(self, hours: int) -> trending.TrendingLists | None:
        """The `hours` window's trending lists as published for the API (None: none are,
        there is no channel, or Redis cannot say)."""
        if self.redis is None:
            return None
        try:
            found = await trending_store.load_lists(self.redis, hours)
        except CacheUnavailable as exc:
            log.warning("could not read the published trending lists: %s", exc)
            return None
        return found[1] if found is not None else None
