"""The version this process serves, and the watch that swaps in a new one.

A request takes `serving.current` once and uses that object throughout, so swapping the
reference never disturbs a request in flight. A new active version is noticed through Redis
pub/sub at once, and through polling PostgreSQL every few seconds should a message be lost.
Messages are heard on this deployment's own channel only, and one naming another namespace
is ignored. An `index_activated` message is a hint, never an order: it makes the process
read the active version from its own database, so a stray or replayed message can never
make it serve a version that is not active.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import faiss
from redis.asyncio import Redis

from common.errors import CacheUnavailable, DependencyError
from common.settings import Settings
from indexing import precompute, publish
from indexing.artifacts import IndexVersion, KeptLists
from service import lists, profiles
from service.answers import AnswerCache
from service.background import cancel
from service.erasures import ErasedUsers
from storage import builds, catalog, events
from storage import profiles as stored_profiles
from storage.blob import BlobStore

log = logging.getLogger(__name__)

# How often the full set of deleted items is re-read, in case a message was missed.
DELETED_RESYNC_SECONDS = 60.0
# A pinned version that failed to load is tried again after this long.
PIN_RETRY_SECONDS = 30.0
# Each periodic read of the stored-profile stamps goes back this far before the last one
# began: another process's clock may run behind this one's.
RECENT_STAMPS_SECONDS = 120.0


class Serving:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, redis: Redis, store: BlobStore
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.store = store
        self.namespace = settings.event_namespace
        self.current: IndexVersion | None = None
        self.answers = AnswerCache(settings.api.answer_cache_bytes)
        # Other events' handlers, by type (the trending lists' reload, say).
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        self.deleted: set[str] = set()
        # Versions other than the active one that experiments pin, loaded on first need.
        self.pinned: dict[int, IndexVersion] = {}
        self._pinning: dict[int, asyncio.Task[IndexVersion]] = {}
        self._pin_failed: dict[int, tuple[float, Exception]] = {}
        self._deleted_rows: dict[int, frozenset[int]] = {}
        self._kept_usable: dict[int, bool] = {}
        self._digests: dict[int, str] = {}
        self._load_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        # Who has a stored profile (service/profiles.py), read again on each subscription.
        self.profile_stamps = profiles.ProfileStamps(settings.api.held_profile_bytes)
        self.erased = ErasedUsers(pool)
        self._subscription = 0  # counts subscriptions and losses of the channel
        self._subscribed = False
        self._stamps_read_at: float | None = None  # when the last read of the stamps began
        self._parts_lock = asyncio.Lock()
        self._reading_parts: asyncio.Task[None] | None = None
        self._parts_to_read: dict[int, IndexVersion] = {}

    async def start(self) -> None:
        # One query at a time per request: OpenMP's thread team costs more than it saves
        # there, and its spinning threads fight the event loop for the cores.
        faiss.omp_set_num_threads(1)
        await self.reload_deleted()
        try:
            await self.sync()
        except Exception:
            log.exception("could not load the active version at start; serving without one")
        self._tasks = [
            asyncio.create_task(self._listen(), name="serving-listen"),
            asyncio.create_task(self._poll(), name="serving-poll"),
        ]

    async def stop(self) -> None:
        await cancel([*self._tasks, *([self._reading_parts] if self._reading_parts else [])])

    async def announce(self, kind: str, **fields: Any) -> None:
        """Tell this deployment's other processes. With Redis down the change stands: they
        find a new active version by their poll, deleted items by their resync."""
        try:
            await events.publish(self.redis, self.namespace, kind, **fields)
        except CacheUnavailable as exc:
            log.warning("could not announce %s; the others will find it by polling: %s", kind, exc)

    def kept_lists(self, version: IndexVersion) -> KeptLists | None:
        """The version's lists ranked at build time, if they were ranked with this process's
        settings (indexing/precompute.py); checked once per version."""
        if version.lists is None:
            return None
        usable = self._kept_usable.get(version.version)
        if usable is None:
            usable = version.lists.ranked_with == precompute.ranked_with(version, self.settings)
            if not usable:
                log.info("version %d: its lists were ranked with other settings", version.version)
            if len(self._kept_usable) > len(self.pinned) + 2:
                self._kept_usable.clear()
            self._kept_usable[version.version] = usable
        return version.lists if usable else None

    async def read_list_parts(self, version: IndexVersion) -> int:
        """Read in the parts of `version`'s lists ranked after its build that this copy
        does not hold yet (indexing/precompute.py); returns how many. A part that fails its
        sha256 is left for the next try, and its users are ranked live meanwhile; with the
        store or PostgreSQL down, the error stops the read, and the next announcement or
        poll tries again. Nothing is read where this process ranks the version's users live
        (its settings are not those the lists were ranked with)."""
        async with self._parts_lock:
            if version.lists is not None and self.kept_lists(version) is None:
                return 0
            records = await builds.lists_parts(self.pool, version.version)
            held = len(version.lists.parts) if version.lists is not None else 0
            try:
                unreadable = await asyncio.to_thread(
                    publish.read_parts,
                    self.store,
                    version,
                    version.version,
                    records,
                    self.settings.index.data_dir,
                )
            finally:
                self._kept_usable.pop(version.version, None)
            for number in unreadable:
                log.warning(
                    "version %d: part %d of its lists cannot be read", version.version, number
                )
            return (len(version.lists.parts) if version.lists is not None else 0) - held

    def _read_parts_soon(self, version: IndexVersion) -> None:
        """Read in `version`'s parts in the background, after any read under way (which may
        have read the records before the newest part's); a failure is logged, and the next
        announcement or poll tries again."""
        self._parts_to_read[id(version)] = version
        if self._reading_parts is not None and not self._reading_parts.done():
            return

        async def read_parts() -> None:
            while self._parts_to_read:
                held = self._parts_to_read.pop(next(iter(self._parts_to_read)))
                if held is not self.current and held is not self.pinned.get(held.version):
                    continue  # no longer served
                try:
                    await self.read_list_parts(held)
                except Exception as exc:
                    log.warning("version %d: could not read in its lists: %s", held.version, exc)

        self._reading_parts = asyncio.create_task(read_parts(), name="serving-list-parts")

    def list_digest(self, version: IndexVersion) -> str:
        """What the lists ranked ahead for `version` depend on besides the profile, with
        this process's settings (service/lists.py); computed once per version."""
        found = self._digests.get(version.version)
        if found is None:
            found = lists.settings_digest(version, self.settings)
            if len(self._digests) > len(self.pinned) + 2:
                self._digests.clear()
            self._digests[version.version] = found
        return found

    def deleted_rows(self, version: IndexVersion) -> frozenset[int]:
        """Rows of `version` whose items are deleted now (the set is cached per version)."""
        cached = self._deleted_rows.get(version.version)
        if cached is None:
            cached = frozenset(
                r for i in self.deleted if (r := version.item_row.get(i)) is not None
            )
            if len(self._deleted_rows) > len(self.pinned) + 2:
                self._deleted_rows.clear()
            self._deleted_rows[version.version] = cached
        return cached

    async def reload_deleted(self) -> None:
        self.deleted = await catalog.deleted_ids(self.pool)
        self._deleted_rows = {}

    def item_deleted(self, item_id: str) -> None:
        self.items_deleted([item_id])

    def items_deleted(self, item_ids: list[str]) -> None:
        self.deleted.update(item_ids)
        self._deleted_rows = {}

    def users_erased(self, user_ids: list[str]) -> None:
        """These users were erased: no held version, and no cached answer, knows them."""
        held = [v for v in (self.current, *self.pinned.values()) if v is not None]
        self.erased.forget(held, user_ids)
        self.answers.drop(user_ids)
        self.profile_stamps.forget(user_ids)

    def item_restored(self, item_id: str) -> None:
        self.deleted.discard(item_id)
        self._deleted_rows = {}

    async def read_all_stamps(self) -> None:
        """Read who has a profile stored since the oldest held version's snapshot (or since
        profiles are stamped, if later), if the channel is subscribed (else the read could
        miss an announcement)."""
        held = [self.current, *self.pinned.values()]
        since = min((v.data_as_of for v in held if v is not None), default=None)
        if not self._subscribed or since is None:
            return
        subscription = self._subscription
        since = max(since, await stored_profiles.stamped_since(self.redis))
        self._stamps_read_at = time.time()
        found = await stored_profiles.stamps_since(self.redis, since)
        if self._subscription == subscription:  # the channel held throughout the read
            self.profile_stamps.read_all(found, since)

    async def read_recent_stamps(self) -> None:
        """Read the stamps of the last few minutes again, in case an announcement was lost
        (a refresh whose announcement failed): a few users, not all since the snapshot."""
        if self.profile_stamps.since is None or self._stamps_read_at is None:
            return
        subscription = self._subscription
        since = self._stamps_read_at - RECENT_STAMPS_SECONDS
        self._stamps_read_at = time.time()
        found = await stored_profiles.stamps_since(self.redis, since)
        if self._subscription == subscription:
            self.profile_stamps.record_each(found)

    def _channel_lost(self) -> None:
        self._subscription += 1
        self._subscribed = False
        self.profile_stamps.lost()

    @property
    def held_versions(self) -> set[int]:
        return set(self.pinned) | ({self.current.version} if self.current else set())

    async def version(self, number: int) -> IndexVersion:
        """Version `number`: the served one, or one an experiment pins, loaded once however
        many requests ask at the same time."""
        current = self.current
        if current is not None and current.version == number:
            return current
        found = self.pinned.get(number)
        if found is not None:
            return found
        failed = self._pin_failed.get(number)
        if failed is not None and time.monotonic() - failed[0] < PIN_RETRY_SECONDS:
            raise DependencyError(f"index version {number} could not be loaded: {failed[1]}")
        task = self._pinning.get(number)
        if task is None:
            task = asyncio.create_task(self.prepare(number, offline=True))
            self._pinning[number] = task

            def done(finished: asyncio.Task[IndexVersion]) -> None:
                self._pinning.pop(number, None)
                if finished.cancelled():
                    return
                error = finished.exception()
                if error is None:
                    self.pinned[number] = finished.result()
                    self._pin_failed.pop(number, None)
                    self._read_parts_soon(finished.result())
                elif isinstance(error, Exception):
                    # Requests fail over at once meanwhile, instead of each trying again.
                    self._pin_failed[number] = (time.monotonic(), error)

            task.add_done_callback(done)
        return await asyncio.shield(task)

    def keep_pinned(self, numbers: set[int]) -> None:
        """Let go of pinned versions that no running experiment names any more."""
        for number in set(self.pinned) - numbers:
            del self.pinned[number]

    async def sync(self) -> None:
        """Load the active version if it is not the one served."""
        active = await builds.active_version(self.pool)
        if active is not None and (self.current is None or self.current.version != active):
            await self.load(active)

    async def load(self, version: int) -> None:
        """Serve `version` (downloaded and verified first), unless it is already served."""
        async with self._load_lock:
            if self.current is not None and self.current.version == version:
                return
            await self._swap(self.pinned.get(version) or await self.prepare(version, offline=True))

    async def prepare(self, version: int, *, offline: bool = False) -> IndexVersion:
        """`version` downloaded, verified and read, but not served yet. With `offline`, a
        verified local copy will do while S3 is down (following the active version, or
        starting); an explicit activation wants the store, which the other processes need."""
        data_dir = self.settings.index.data_dir
        folder, manifest = await asyncio.to_thread(
            publish.download, self.store, version, data_dir, offline=offline
        )
        loaded = await asyncio.to_thread(IndexVersion.load, folder, manifest)
        try:
            await self.erased.catch_up([loaded])
        except Exception as exc:  # the poll catches up; the version serves meanwhile
            log.warning("version %d: could not read the erasures since its build: %s", version, exc)
        return loaded

    async def serve(self, loaded: IndexVersion) -> None:
        """Serve a prepared version (if another has not taken its place meanwhile)."""
        async with self._load_lock:
            if self.current is None or self.current.version != loaded.version:
                await self._swap(loaded)

    async def _swap(self, loaded: IndexVersion) -> None:
        # A version an experiment pins is held already: serve that copy, not a second one.
        loaded = self.pinned.get(loaded.version, loaded)
        # Its lists ranked after its build are read in before it serves: a user whose list
        # is in a part is never ranked live meanwhile (their answer would be ten times
        # slower). Should the store fail, it serves at once, and the parts follow.
        try:
            await self.read_list_parts(loaded)
        except Exception as exc:
            log.warning("version %d: serving before its lists are read in: %s", loaded.version, exc)
        previous = self.current
        self.current = loaded
        # The version's arrays and maps live until the next swap: keep the collector
        # from walking their hundreds of thousands of objects on every full collection.
        gc.collect()
        gc.freeze()
        if self.profile_stamps.since is not None and self.profile_stamps.since > loaded.data_as_of:
            # An older version (a rollback): who stored a profile since its snapshot.
            await self._read_stamps(full=True)
        self._read_parts_soon(loaded)  # the parts of its lists ranked since it went live
        keep = {loaded.version} | ({previous.version} if previous else set())
        keep |= set(self.pinned) | set(self._pinning)
        await asyncio.to_thread(publish.prune_local, self.settings.index.data_dir, keep)
        log.info(
            "serving index version %d (%d items, %d users)",
            loaded.version,
            len(loaded.item_ids),
            len(loaded.user_ids),
        )

    async def _listen(self) -> None:
        while True:
            try:
                async for event in events.listen(self.redis, self.namespace):
                    await self._handle(event)
            except asyncio.CancelledError:
                self._channel_lost()
                raise
            except Exception:
                self._channel_lost()
                log.warning("lost the event channel; listening again shortly", exc_info=True)
                await asyncio.sleep(1.0)
            else:
                self._channel_lost()

    async def _handle(self, event: dict[str, Any]) -> None:
        if event.get("namespace") != self.namespace:
            return
        kind = event.get("type")
        if kind == "profiles_changed":
            self.answers.drop(event["user_ids"])
            # An announcement with no time (an older release's) counts as stored now.
            self.profile_stamps.record(event["user_ids"], float(event.get("at") or time.time()))
        elif kind == events.SUBSCRIBED:
            # Subscribed again, perhaps after a reconnection the client made on its own:
            # whatever was announced meanwhile is unheard, so the stamps are read afresh.
            self._channel_lost()
            self._subscribed = True
            await self._read_stamps(full=True)  # on failure, the next poll reads them
        elif kind == "lists_added":  # a part of a version's lists (indexing/precompute.py)
            number, current = int(event.get("version") or 0), self.current
            held = current if current and current.version == number else self.pinned.get(number)
            if held is not None:
                self._read_parts_soon(held)
        elif kind == "item_deleted":
            self.item_deleted(event["item_id"])
        elif kind == "items_deleted":
            self.items_deleted(list(event["item_ids"]))
        elif kind == "users_erased":
            self.users_erased(list(event["user_ids"]))
        elif kind == "item_restored":
            for item_id in event["item_ids"]:
                self.item_restored(item_id)
        elif kind == "index_activated":
            try:
                await self.sync()
            except Exception:
                log.exception("could not load the active version; the poll will try again")
        elif (handler := self.handlers.get(str(kind))) is not None:
            try:
                await handler(event)
            except Exception:
                log.warning("could not handle a %s event", kind, exc_info=True)

    async def _read_stamps(self, *, full: bool) -> None:
        """Read the stored-profile stamps (all since the snapshot, or the recent ones); a
        failure leaves the knowledge as it was (unknown, or as the announcements keep it)."""
        try:
            await (self.read_all_stamps() if full else self.read_recent_stamps())
        except Exception as exc:
            log.warning("could not read who has a stored profile: %s", exc)

    async def _poll(self) -> None:
        since_deleted = 0.0
        while True:
            await asyncio.sleep(self.settings.index.poll_seconds)
            try:
                await self.sync()
                since_deleted += self.settings.index.poll_seconds
                if self.profile_stamps.since is None:
                    await self._read_stamps(full=True)
                if since_deleted >= DELETED_RESYNC_SECONDS:
                    # A part whose announcement was lost, or that could not be read.
                    held = [v for v in (self.current, *self.pinned.values()) if v is not None]
                    for version in held:
                        self._read_parts_soon(version)
                    await self._read_stamps(full=False)
                    await self.reload_deleted()
                    # An erasure whose announcement was lost.
                    await self.erased.catch_up(held)
                    self.erased.keep_only({v.version for v in held})
                    since_deleted = 0.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "index poll failed; serving version %s meanwhile",
                    self.current.version if self.current else None,
                    exc_info=True,
                )
