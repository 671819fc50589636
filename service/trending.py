"""Trending lists held by each API process: no request recomputes them.

The refresh job (workers/pipeline.py) publishes every list of the default window as one value
in Redis and announces it; each process then loads it whole and holds it, and checks the
published generation every few seconds in case it missed the announcement. A refresh that
does not come keeps the last lists, however old. Redis down: the held lists go on serving.

A window the job does not publish (another `window_hours`), or the default one before any
job ran, is computed here: at most once at a time per window (requests asking meanwhile wait
for that one computation), off the event loop, and kept `ON_DEMAND_SECONDS`; at most
`WINDOWS` such windows are kept. A category the lists do not know answers [] at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

import asyncpg
from redis.asyncio import Redis

from common.errors import DependencyError
from common.settings import Settings
from indexing import trending
from indexing.artifacts import IndexVersion
from indexing.hybrid import Trend
from service.background import cancel
from storage import trending as store

log = logging.getLogger(__name__)
ON_DEMAND_SECONDS = 60.0
WINDOWS = 8
CHECK_SECONDS = 5.0


class Trending:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, redis: Redis) -> None:
        self.settings, self.pool, self.redis = settings, pool, redis
        self.hours = settings.index.trending_window_hours
        self.generation: int | None = None
        self._published: trending.TrendingLists | None = None
        self._computed: OrderedDict[int, tuple[float, trending.TrendingLists]] = OrderedDict()
        self._flights: dict[int, asyncio.Task[trending.TrendingLists]] = {}
        # (version, the lists it was made from, scores): remade when either changes
        self._hot: tuple[int, trending.TrendingLists, Trend | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(DependencyError):
            await self.reload()
        self._task = asyncio.create_task(self._watch(), name="trending-watch")

    async def stop(self) -> None:
        await cancel(t for t in (self._task, *self._flights.values()) if t is not None)

    def forget(self) -> None:
        """Drop every list held (the tests' fresh start)."""
        self.generation, self._published, self._hot = None, None, None
        self._computed.clear()

    async def reload(self, generation: int | None = None) -> None:
        """Load the published lists if they are newer than the ones held."""
        if generation is not None and generation == self.generation:
            return
        found = await store.load_lists(self.redis, self.hours)
        if found is not None and found[0] != self.generation:
            self.generation, self._published = found
            log.info("holding trending lists of generation %d", self.generation)

    async def lists(self, hours: int) -> trending.TrendingLists:
        if hours == self.hours and self._published is not None:
            return self._published
        held = self._computed.get(hours)
        if held is not None and held[0] > time.monotonic():
            return held[1]
        if hours not in self._flights:
            self._background(hours)
        return await asyncio.shield(self._flights[hours])

    async def top(self, variant: str, hours: int, category: str | None) -> list[tuple[str, float]]:
        return (await self.lists(hours)).get((variant, category), [])

    def popular(self, category: str | None) -> list[tuple[str, float]]:
        """Live items by all of their history, best first (the refresh job computes them
        with the default window's lists): what a list that comes out short is filled
        from. Never waits; [] until such lists are held."""
        held = self._published
        if held is None:
            computed = self._computed.get(self.hours)
            held = computed[1] if computed is not None else None
            if computed is None and self.hours not in self._flights:
                self._background(self.hours)  # for the requests after this one
        return held.get(("popular", category), []) if held is not None else []

    def hot_scores(self, version: IndexVersion) -> Trend | None:
        """The held hot list of the default window as a score per row of `version` (None when
        no list is held: the version's popularity stands in). Never waits; sorted once per
        list and version."""
        ranked = self._published
        if ranked is None:
            held = self._computed.get(self.hours)
            ranked = held[1] if held is not None else None
            if (held is None or held[0] <= time.monotonic()) and self.hours not in self._flights:
                # Nothing published (no refresh job has run): compute it in the background
                # for the requests after this one, which is answered without it.
                self._background(self.hours)
        if ranked is None:
            return None
        if self._hot is not None and self._hot[0] == version.version and self._hot[1] is ranked:
            return self._hot[2]
        trend = trending.hot_scores(ranked, version)
        self._hot = (version.version, ranked, trend)
        return trend

    def _background(self, hours: int) -> None:
        flight = self._flights[hours] = asyncio.create_task(self._compute(hours))
        flight.add_done_callback(lambda done: self._landed(hours, done))

    def _landed(self, hours: int, done: asyncio.Task[trending.TrendingLists]) -> None:
        self._flights.pop(hours, None)
        if not done.cancelled() and (error := done.exception()) is not None:
            log.warning("could not compute the trending lists of %d h: %s", hours, error)

    async def _compute(self, hours: int) -> trending.TrendingLists:
        rows = await store.window_rows(self.pool, hours)
        lists = await asyncio.to_thread(trending.all_lists, rows, self.settings, hours)
        if hours == self.hours:  # as the refresh job publishes them, where it can
            try:
                top = trending.TOP
                lists |= await store.popular_lists(self.pool, self.settings.interactions, top)
            except DependencyError as exc:  # a pass over all of history, in a 5 s statement
                log.warning("could not compute the popular lists: %s", exc)
        self._computed[hours] = (time.monotonic() + ON_DEMAND_SECONDS, lists)
        self._computed.move_to_end(hours)
        while len(self._computed) > WINDOWS:
            self._computed.popitem(last=False)
        return lists

    async def _watch(self) -> None:
        """Catch a missed announcement: compare the published generation now and then."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                published = await store.generation(self.redis, self.hours)
                if published is not None and published != self.generation:
                    await self.reload(published)
            except DependencyError as exc:
                log.debug("trending check skipped: %s", exc)
