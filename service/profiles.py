"""Profiles recomputed the moment a user interacts, so their next answer reflects it.

The API recomputes the touched users' vectors from their newest `INDEX_PROFILE_HISTORY`
interactions against the served version's item vectors and keeps them in Redis, where every
API process reads them. A profile written after a version's snapshot supersedes what that
version knows of the user.
Every write queues its users in PostgreSQL in its own transaction (storage/activity.py), and
a user leaves the queue only once their profile is stored: a crash after the 202 or a Redis
outage delays a refresh, never loses one. With Redis down, reads fall back to the profile
the served version holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import orjson
from redis.asyncio import Redis

from common.errors import CacheUnavailable
from common.settings import Settings
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats, type_weights, user_decay, user_vectors
from indexing.ranking import Profile, newest_first, profile_of
from service.background import cancel
from storage import activity
from storage import profiles as stored_profiles
from storage.events import publish

if TYPE_CHECKING:
    from service.serving import Serving

log = logging.getLogger(__name__)
PROFILE_SECONDS = 7 * 86_400


async def refresh(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    version: IndexVersion | None,
    user_ids: Sequence[str],
) -> None:
    """Recompute and store the profiles of `user_ids`, and tell every API process.

    All of them at once: one query, one sparse product for the vectors, one pipeline. Each
    profile reads the user's newest `profile_history` interactions, so a user with a long
    history costs no more than one with that many.
    """
    now = time.time()
    rows = await activity.recent_history(pool, user_ids, settings.index.profile_history)
    position = {user_id: n for n, user_id in enumerate(user_ids)}
    weights = type_weights(
        [r["type"] for r in rows], [r["value"] for r in rows], settings.interactions
    )
    net: list[dict[str, float]] = [defaultdict(float) for _ in user_ids]
    newest: list[dict[str, float]] = [defaultdict(float) for _ in user_ids]
    counts = [0] * len(user_ids)
    for row, weight in zip(rows, weights, strict=True):
        n = position[row["user_id"]]
        net[n][row["item_id"]] += float(weight)
        newest[n][row["item_id"]] = max(newest[n][row["item_id"]], row["at"])
        counts[n] += 1
    half_life = version.collaborative.half_life_days if version and version.collaborative else 0.0
    vectors = _vectors(settings, version, rows, position, weights)
    encoded: dict[str, bytes] = {}
    for n, user_id in enumerate(user_ids):
        liked, strength = newest_first(
            list(net[n]),
            np.fromiter(net[n].values(), dtype=np.float32, count=len(net[n])),
            np.fromiter(newest[n].values(), dtype=np.float64, count=len(newest[n])),
            half_life,
        )
        profile = {
            "at": now,
            "version": version.version if version else None,
            "count": counts[n],
            "seen": sorted(net[n]),
            "negative": sorted(i for i, w in net[n].items() if w < 0),
            "liked": liked,
            "evidence": strength,
            "vector": vectors[n] if vectors is not None and vectors[n].any() else None,
        }
        encoded[user_id] = orjson.dumps(profile, option=orjson.OPT_SERIALIZE_NUMPY)
    await stored_profiles.save(redis, encoded, PROFILE_SECONDS)
    await publish(redis, settings.event_namespace, "profiles_changed", user_ids=list(user_ids))


def _vectors(
    settings: Settings,
    version: IndexVersion | None,
    rows: list[asyncpg.Record],
    position: dict[str, int],
    weights: Floats,
) -> Floats | None:
    """Taste vectors of every user in `position` over the version's item vectors."""
    if version is None:
        return None
    keep = [n for n, r in enumerate(rows) if r["item_id"] in version.item_row]
    users = np.array([position[rows[n]["user_id"]] for n in keep], dtype=np.int64)
    items = np.array([version.item_row[rows[n]["item_id"]] for n in keep], dtype=np.int64)
    at = np.array([rows[n]["at"] for n in keep], dtype=np.float64)
    decayed = weights[keep] * user_decay(users, at, settings.index.half_life_days)
    return user_vectors(users, items, decayed, len(position), version.item_vectors)


async def current(redis: Redis, version: IndexVersion | None, user_id: str) -> Profile:
    """The freshest profile: the stored one if newer than the version's snapshot; the
    version's own when Redis cannot be reached."""
    try:
        raw = await stored_profiles.load(redis, user_id)
    except CacheUnavailable:
        log.warning("Redis is unavailable: serving %r from the version's profile", user_id)
        raw = None
    if raw is not None:
        stored = orjson.loads(raw)
        newer = version is None or stored["at"] >= version.data_as_of
        same_vectors = version is None or stored["version"] == version.version
        if newer:
            vector = stored["vector"]
            taste: Floats | None
            if vector is not None and same_vectors:
                taste = np.asarray(vector, dtype=np.float32)
            elif version is not None:
                # Computed against other item vectors: keep the history, take the version's
                # vector for this user (or none).
                taste = profile_of(version, user_id).vector
            else:
                taste = None
            fresh = Profile(
                vector=taste,
                seen=frozenset(stored["seen"]),
                negative=frozenset(stored["negative"]),
                count=int(stored["count"]),
                liked=tuple(stored.get("liked", ())),
                evidence=tuple(stored.get("evidence", ())),
            )
            return _built_if_same(fresh, version, user_id, float(stored["at"]))
    return profile_of(version, user_id) if version is not None else Profile()


def _built_if_same(
    fresh: Profile, version: IndexVersion | None, user_id: str, stored_at: float
) -> Profile:
    """`fresh` marked as the version's own where it says what the version's profile says
    (a refresh after a bulk load, say, with nothing done since the snapshot): the user's
    list is then the one the build ranked. The verdict is kept per stored profile, so an
    idle user's requests compare once."""
    if version is None:
        return fresh
    key = (version.version, user_id, stored_at)
    same = _SAME.get(key)
    if same is None:
        own = profile_of(version, user_id)
        same = (
            own.built
            and own.liked == fresh.liked
            and own.seen == fresh.seen
            and own.negative == fresh.negative
            and len(own.evidence) == len(fresh.evidence)
            and np.allclose(own.evidence, fresh.evidence, rtol=1e-5)
        )
        _SAME[key] = same
        if len(_SAME) > SAME_KEPT:
            _SAME.popitem(last=False)
    return replace(fresh, built=True) if same else fresh


# Verdicts of `_built_if_same` kept, by (version, user, stored profile's time): about 100 bytes
# each.
SAME_KEPT = 100_000
_SAME: OrderedDict[tuple[int, str, float], bool] = OrderedDict()


class Refresher:
    """Drains the queue of users whose profiles are behind (storage/activity.py).

    Every API process drains it, woken by its own writes and every POLL_SECONDS otherwise,
    so users queued by a process that died are refreshed by the others, or by it after a
    restart. Two processes may refresh the same user at once; the result is the same.
    """

    CHUNK = 500
    POLL_SECONDS = 5.0

    def __init__(
        self, pool: asyncpg.Pool, redis: Redis, settings: Settings, serving: Serving
    ) -> None:
        self.pool, self.redis, self.settings, self.serving = pool, redis, settings, serving
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wake.set()  # users a stopped process left queued are refreshed at once
        self._task = asyncio.create_task(self._run(), name="profile-refresher")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel([self._task])
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

    async def _refresh(self, user_ids: Sequence[str]) -> None:
        await refresh(self.pool, self.redis, self.settings, self.serving.current, user_ids)
        self.serving.answers.drop(user_ids)

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
