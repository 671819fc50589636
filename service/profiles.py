"""Profiles recomputed the moment a user interacts, so their next answer reflects it.

The API recomputes the touched users' vectors from their full history against the served
version's item vectors and keeps them in Redis, where every API process reads them. A
profile written after a version's snapshot supersedes what that version knows of the user.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import orjson
from redis.asyncio import Redis

from common.settings import Settings
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats, decay, one_user_vector, type_weights
from indexing.ranking import Profile, profile_of
from storage.events import profile_key, publish

PROFILE_SECONDS = 7 * 86_400


async def refresh(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    version: IndexVersion | None,
    user_ids: Sequence[str],
) -> None:
    """Recompute and store the profiles of `user_ids`, and tell every API process."""
    now = time.time()
    rows = await pool.fetch(
        """SELECT user_id, item_id, type, value, extract(epoch FROM occurred_at)::float8 AS at
           FROM interactions WHERE user_id = ANY($1::text[])""",
        list(user_ids),
    )
    by_user: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(row)
    async with redis.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            history = by_user.get(user_id, [])
            profile = _compute(settings, version, history, now)
            pipe.set(
                profile_key(user_id),
                orjson.dumps(profile, option=orjson.OPT_SERIALIZE_NUMPY),
                ex=PROFILE_SECONDS,
            )
        await pipe.execute()
    await publish(redis, "profiles_changed", user_ids=list(user_ids))


def _compute(
    settings: Settings, version: IndexVersion | None, history: list[asyncpg.Record], now: float
) -> dict[str, Any]:
    weights = type_weights(
        [r["type"] for r in history], [r["value"] for r in history], settings.interactions
    )
    net: dict[str, float] = defaultdict(float)
    for row, weight in zip(history, weights, strict=True):
        net[row["item_id"]] += float(weight)
    vector = None
    if version is not None and history:
        known = [
            (version.item_row[r["item_id"]], n)
            for n, r in enumerate(history)
            if r["item_id"] in version.item_row
        ]
        if known:
            rows = np.array([k for k, _ in known], dtype=np.int64)
            at = np.array([history[n]["at"] for _, n in known], dtype=np.float64)
            w = weights[[n for _, n in known]] * decay(
                at, datetime.fromtimestamp(now, UTC), settings.index.half_life_days
            )
            vector = one_user_vector(rows, w, version.item_vectors)
    return {
        "at": now,
        "version": version.version if version else None,
        "count": len(history),
        "seen": sorted(net),
        "negative": sorted(i for i, w in net.items() if w < 0),
        "vector": vector,
    }


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
            )
    return profile_of(version, user_id) if version is not None else Profile()
