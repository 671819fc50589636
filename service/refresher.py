"""Drains the queue of users whose profiles are behind, and ranks their lists ahead.

Every write queues its users in PostgreSQL in its own transaction (storage/activity.py); the
refresher recomputes their profiles (service/profiles.py), and then ranks their default lists
in the background and keeps them beside the profiles (service/lists.py), so that a user's
next request is a lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg
from redis.asyncio import Redis

from common.settings import Settings
from indexing.artifacts import IndexVersion
from indexing.profiles import Profile
from service import lists
from service.background import cancel
from service.profiles import parse, refresh
from service.serving import Serving
from service.trending import Trending
from storage import activity
from storage import profiles as stored_profiles

log = logging.getLogger(__name__)


class Refresher:
    """Drains the queue of users whose profiles are behind (storage/activity.py).

    Every API process drains it, woken by its own writes and every POLL_SECONDS otherwise,
    so users queued by a process that died are refreshed by the others, or by it after a
    restart. Two processes may refresh the same user at once; the result is the same.
    """

    CHUNK = 500
    POLL_SECONDS = 5.0
    RANK_BATCH = 32  # users ranked ahead per hand-off to a thread, then stored

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        settings: Settings,
        serving: Serving,
        trending: Trending,
    ) -> None:
        self.pool, self.redis, self.settings, self.serving = pool, redis, settings, serving
        self.trending = trending
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Users whose lists wait to be ranked ahead: the version, the profile and its time.
        self._to_rank: dict[str, tuple[IndexVersion, tuple[Profile, float]]] = {}
        self._ranking: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._wake.set()  # users a stopped process left queued are refreshed at once
        self._task = asyncio.create_task(self._run(), name="profile-refresher")

    async def stop(self) -> None:
        if self._task is None:  # never started (a process that serves no one)
            return
        self._stopping = True  # the last refreshes rank nothing ahead
        if self._task is not None:
            await cancel([self._task])
        if self._ranking is not None:
            await cancel([self._ranking])
        try:
            await self.flush()
        except Exception:
            log.warning("profiles left queued at shutdown; the next start refreshes them")

    def mark(self) -> None:
        """Users were queued: drain soon."""
        self._wake.set()

    async def now(self, user_ids: Sequence[str]) -> None:
        """Refresh these users before returning (a single interaction's write)."""
        queued = await activity.queued_for(self.pool, user_ids)
        await self._refresh([u for u, _ in queued] or list(user_ids))
        await activity.refreshed(self.pool, queued)

    async def flush(self) -> None:
        """Refresh every queued user (in chunks) until the queue is empty."""
        while queued := await activity.queued_refreshes(self.pool, self.CHUNK):
            await self._refresh([u for u, _ in queued])
            await activity.refreshed(self.pool, queued)

    async def ranked(self) -> None:
        """Wait until the lists waiting to be ranked ahead are ranked and stored."""
        while self._ranking is not None and not self._ranking.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ranking)

    async def _refresh(self, user_ids: Sequence[str]) -> None:
        version = self.serving.current
        stored = await refresh(
            self.pool, self.redis, self.settings, version, user_ids, self.serving.profile_stamps
        )
        self.serving.answers.drop(user_ids)
        if version is not None:
            await self._rank_ahead(version, stored)

    async def _rank_ahead(self, version: IndexVersion, stored: dict[str, bytes]) -> None:
        """Queue the refreshed users whose profile is not the build's own (the build's list
        answers those) for ranking ahead, within the bound."""
        if self._stopping:
            return
        room = self.settings.api.rank_ahead_users - len(self._to_rank)
        for n, (user_id, raw) in enumerate(stored.items()):
            if n % self.RANK_BATCH == self.RANK_BATCH - 1:
                await asyncio.sleep(0)  # parsing a whole chunk at once would hold the loop
            if user_id not in self._to_rank and room <= 0:
                continue
            # Parsed here, on the loop: the verdicts `parse` keeps are not for threads.
            found = parse(raw, version, user_id, self.serving.profile_stamps.verdicts)
            if found is None or found[0].built:
                self._to_rank.pop(user_id, None)  # an older profile waiting is superseded
                continue
            room -= user_id not in self._to_rank
            self._to_rank[user_id] = (version, found)  # the newest profile wins
        if self._to_rank and (self._ranking is None or self._ranking.done()):
            self._ranking = asyncio.create_task(self._rank_waiting(), name="lists-ranked-ahead")

    async def _rank_waiting(self) -> None:
        """Rank the waiting users' lists, a batch at a time on one thread, and store them."""
        while self._to_rank:
            batch = list(self._to_rank.items())[: self.RANK_BATCH]
            for user_id, _ in batch:
                del self._to_rank[user_id]
            version = self.serving.current
            todo = [(u, found) for u, (v, found) in batch if version is not None and v is version]
            if version is None or not todo:
                continue  # another version serves now: its users are ranked when they ask
            trending = self.trending.hot_scores(version)  # as a live ranking would now
            digest = self.serving.list_digest(version)
            try:
                ranked = await asyncio.to_thread(
                    lists.rank_ahead, version, todo, self.settings, trending, digest
                )
                await stored_profiles.save_lists(self.redis, ranked, lists.LIST_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # they are ranked when they ask
                log.warning("could not rank %d lists ahead: %s", len(todo), exc)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.POLL_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not refresh queued profiles (%s); they stay queued", exc)
