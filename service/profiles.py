"""Profiles recomputed the moment a user interacts, so their next answer reflects it.

The API recomputes the touched users' vectors from their full history against the served
version's item vectors and keeps them in Redis, where every API process reads them. A
profile written after a version's snapshot supersedes what that version knows of the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import orjson
from redis.asyncio import Redis

from common.settings import Settings
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats, type_weights, user_decay, user_vectors
from indexing.ranking import Profile, newest_first, profile_of
from storage.events import profile_key, publish

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

    All of them at once: one query, one sparse product for the vectors, one pipeline.
    """
    now = time.time()
    rows = await pool.fetch(
        """SELECT user_id, item_id, type, value, extract(epoch FROM occurred_at)::float8 AS at
           FROM interactions WHERE user_id = ANY($1::text[])""",
        list(user_ids),
    )
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
    async with redis.pipeline(transaction=False) as pipe:
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
            pipe.set(
                profile_key(user_id),
                orjson.dumps(profile, option=orjson.OPT_SERIALIZE_NUMPY),
                ex=PROFILE_SECONDS,
            )
        await pipe.execute()
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
    """The freshest profile: the stored one if newer than the version's snapshot."""
    raw = await redis.get(profile_key(user_id))
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
            return Profile(
                vector=taste,
                seen=frozenset(stored["seen"]),
                negative=frozenset(stored["negative"]),
                count=int(stored["count"]),
                liked=tuple(stored.get("liked", ())),
                evidence=tuple(stored.get("evidence", ())),
            )
    return profile_of(version, user_id) if version is not None else Profile()


class Refresher:
    """Refreshes the profiles of users named by batch writes, in the background.

    Users are collected into one set and drained in chunks, so a bulk import that names the
    same users batch after batch recomputes each of them once per pass, not once per batch.
    """

    CHUNK = 500

    def __init__(
        self, pool: asyncpg.Pool, redis: Redis, settings: Settings, serving: Serving
    ) -> None:
        self.pool, self.redis, self.settings, self.serving = pool, redis, settings, serving
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="profile-refresher")

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def mark(self, user_ids: Iterable[str]) -> None:
        self._dirty.update(user_ids)
        self._idle.clear()
        self._wake.set()

    async def now(self, user_ids: Sequence[str]) -> None:
        """Refresh these users before returning (a single interaction's write)."""
        await refresh(self.pool, self.redis, self.settings, self.serving.current, user_ids)
        self.serving.answers.drop(user_ids)

    async def flush(self) -> None:
        """Wait until every marked user has been refreshed."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                chunk = [self._dirty.pop() for _ in range(min(self.CHUNK, len(self._dirty)))]
                try:
                    await self.now(chunk)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning(
                        "could not refresh %d profiles; retrying", len(chunk), exc_info=True
                    )
                    self._dirty.update(chunk)
                    await asyncio.sleep(1.0)
            self._idle.set()
