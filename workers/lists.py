"""The lists of a version's users that its build had no time for within `precompute_seconds`,
ranked in parts (indexing/precompute.py): by the build itself before it activates the
version, and by the workers after, for what is left of them then.

Each part is uploaded beside the version's files and recorded (version_lists); every API
process reads in the recorded parts of a version before serving it, and the parts
announced while it serves the version.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from common.settings import Settings
from indexing import precompute, publish, trending
from indexing.artifacts import IndexVersion
from indexing.hybrid import Trend
from storage import builds
from storage import trending as trending_store
from storage.blob import BlobStore
from workers.context import BuildContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filling:
    """Version `version` in memory (`built`), whose users' lists are ranked in parts, and the
    hot list those lists follow."""

    version: int
    built: IndexVersion
    trend: Trend | None


async def fill_part(
    pool: asyncpg.Pool,
    store: BlobStore,
    settings: Settings,
    filling: Filling,
    context: BuildContext,
    *,
    late: Callable[[], bool] = lambda: False,
    by_its_build: bool = False,
) -> int:
    """Rank the next `fill_part_users` of the users whose lists the version's build had no
    time for, the most active first: the part is uploaded beside the version's files,
    recorded, then announced. `late` is asked before each batch of users, and the part holds
    those ranked until it says yes. Returns how many users the part holds: 0 when none are
    left, or ranking more is no longer worth it (`builds.still_filling`: the version's own
    build ranks them while the version is kept, `by_its_build`; anyone else while it is the
    active version and no other build is asked for), or another process is ranking a part
    of it now, or `late` said yes at once."""
    built, number = filling.built, filling.version
    if built.lists is None:
        return 0
    if precompute.ranked_with(built, settings) != built.lists.ranked_with:
        log.warning("version %d: its lists were ranked with other settings", number)
        return 0
    async with builds.fill_claim(pool, number) as claimed:
        if not claimed or not await builds.still_filling(pool, number, by_its_build=by_its_build):
            return 0
        await _read_parts(pool, store, settings, built, number)  # another process's too
        users = precompute.unranked(built)[: settings.index.fill_part_users]
        if not len(users):
            return 0
        ranked = await asyncio.to_thread(
            precompute.rank_part,
            built,
            settings,
            users,
            threads=os.cpu_count() or 1,
            trending=filling.trend,
            late=late,
        )
        if not len(ranked.users):
            return 0
        part = await builds.next_lists_part(pool, number)
        name = publish.lists_part_name(part)
        path = settings.index.data_dir / f"{number:010d}" / name
        saved = await asyncio.to_thread(ranked.save, path)
        await asyncio.to_thread(publish.upload_part, store, number, path)
        record = {
            "part": part,
            "name": name,
            **saved,
            "users": len(ranked.users),
            "ranked_with": built.lists.ranked_with,
        }
        await builds.record_lists_part(pool, number, record)
        built.lists = built.lists.with_part(ranked)  # the next part goes on from these users
        built.parts_read.add(part)
    await context.lists_added(number, part)
    log.info("ranked part %d of version %d's lists: %d users", part, number, len(ranked.users))
    return len(ranked.users)


async def _read_parts(
    pool: asyncpg.Pool, store: BlobStore, settings: Settings, built: IndexVersion, number: int
) -> None:
    """Fold the recorded parts of version `number`'s lists that this copy of it (`built`)
    has not read in; the users of a part that cannot be read are ranked again."""
    records = await builds.lists_parts(pool, number)
    data_dir = settings.index.data_dir
    unreadable = await asyncio.to_thread(
        publish.read_parts, store, built, number, records, data_dir
    )
    for part in unreadable:
        log.warning("version %d: part %d cannot be read; its users are ranked again", number, part)
        built.parts_read.add(part)


async def fill_lists(
    pool: asyncpg.Pool,
    store: BlobStore,
    settings: Settings,
    filling: Filling,
    context: BuildContext,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Every part `fill_part` ranks once the version is live, one after another, for up to
    `fill_seconds` (by `clock`, asked before each batch of users): in one process, as the
    bench does; a worker ranks each part as a task of its own (`Filler`, workers/tasks.py),
    so that other tasks run in between. Returns how many users it ranked."""
    deadline = clock() + settings.index.fill_seconds
    done = 0
    while clock() <= deadline:
        ranked = await fill_part(
            pool, store, settings, filling, context, late=lambda: clock() > deadline
        )
        if not ranked:
            break
        done += ranked
    return done


async def resume(
    pool: asyncpg.Pool, store: BlobStore, settings: Settings, context: BuildContext, number: int
) -> Filling | None:
    """Version `number` in memory, with every recorded part of its lists folded in, to rank
    the rest (`fill_part`) in a process that does not hold it from its build; None when no
    user is left, or its build did not count them (an older release). The lists go on with
    the hot list published now (or computed, if none is)."""
    manifest = (await builds.get_version(pool, number))["manifest"]
    left = int(manifest.get("precomputed", {}).get("left") or 0)
    parts = await builds.lists_parts(pool, number)
    if sum(int(p["users"]) for p in parts) >= left or not await builds.still_filling(pool, number):
        return None
    data_dir = settings.index.data_dir
    folder, manifest = await asyncio.to_thread(publish.download, store, number, data_dir)
    built = await asyncio.to_thread(IndexVersion.load, folder, manifest)
    if built.lists is None:
        return None
    await _read_parts(pool, store, settings, built, number)
    hot = await hot_lists(pool, settings, context)
    return Filling(number, built, trending.hot_scores(hot, built))


async def hot_lists(
    pool: asyncpg.Pool, settings: Settings, context: BuildContext
) -> trending.TrendingLists:
    """The default window's trending lists, which users' lists follow: those published for
    the API, or else computed from the window's interactions as the refresh job computes
    them."""
    hours = settings.index.trending_window_hours
    found = await context.published_trending(hours)
    if found is not None:
        return found
    window = await trending_store.window_rows(pool, hours)
    return await asyncio.to_thread(trending.all_lists, window, settings, hours)


class Filler:
    """Ranks the lists of the active version that its build left, one part per call, holding
    the version in memory between calls: from its build when this process built it (`keep`),
    else loaded (`resume`). A worker process has one (workers/tasks.py)."""

    def __init__(self) -> None:
        self.filling: Filling | None = None

    def keep(self, filling: Filling | None) -> None:
        """Hold `filling` (None: let the version held go, and its memory)."""
        self.filling = filling

    async def rank_next(
        self,
        pool: asyncpg.Pool,
        store: BlobStore,
        settings: Settings,
        context: BuildContext,
        number: int,
        *,
        until: float,
        part_seconds: float,
    ) -> int:
        """Rank the next part of version `number`'s lists (`fill_part`). The part stops
        growing at epoch `until`, or `part_seconds` after the version is in memory. Returns
        how many users it holds (0: none is left to rank, or it is no longer worth it)."""
        if self.filling is None or self.filling.version != number:
            self.filling = None  # another version's: let it go before loading this one
            self.filling = await resume(pool, store, settings, context, number)
        if self.filling is None:
            return 0
        started = time.monotonic()

        def late() -> bool:
            return time.time() > until or time.monotonic() - started > part_seconds

        return await fill_part(pool, store, settings, self.filling, context, late=late)
