"""Trending lists kept in Redis as sorted sets, one per variant, window and category."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis

from storage.cache import redis_errors
from storage.db import database_errors
from storage.events import trending_key

Lists = dict[tuple[str, str | None], list[tuple[str, float]]]


async def save(
    redis: Redis,
    lists: Lists,
    hours: int,
    ttl: float,
) -> None:
    """Replace one window's lists atomically; they expire after `ttl` seconds."""
    with redis_errors(redis, "storing trending lists"):
        await _save(redis, lists, hours, ttl)


async def _save(redis: Redis, lists: Lists, hours: int, ttl: float) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for (variant, category), ranked in lists.items():
            key = trending_key(variant, hours, category)
            pipe.delete(key)
            if ranked:
                pipe.zadd(key, dict(ranked))
            else:
                # An empty list is remembered too, so a quiet catalog is not recomputed
                # on every request.
                pipe.zadd(key, {"": float("-inf")})
            pipe.expire(key, max(1, int(ttl)))
        await pipe.execute()


async def window_rows(pool: asyncpg.Pool, hours: int) -> list[asyncpg.Record]:
    """The interactions of the last `hours` on live items, as indexing/trending.py reads them."""
    with database_errors():
        rows: list[asyncpg.Record] = await pool.fetch(
            """SELECT i.item_id, it.category, i.user_id, i.type, i.value,
                      extract(epoch FROM i.occurred_at)::float8 AS at,
                      extract(epoch FROM coalesce(it.published_at, it.created_at))::float8
                          AS published,
                      extract(epoch FROM now())::float8 AS now
               FROM interactions i JOIN items it ON it.item_id = i.item_id
               WHERE i.occurred_at > now() - make_interval(hours => $1)
                 AND i.occurred_at <= now() AND it.deleted_at IS NULL""",
            hours,
        )
    return rows


async def read(
    redis: Redis, variant: str, hours: int, category: str | None, count: int
) -> list[tuple[str, float]] | None:
    """The stored list, best first; None when it was never computed (or expired)."""
    key = trending_key(variant, hours, category)
    with redis_errors(redis, "reading a trending list"):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.exists(key)
            pipe.zrevrange(key, 0, count - 1, withscores=True)
            exists, found = await pipe.execute()
    if not exists:
        return None
    return [(member.decode(), float(score)) for member, score in found if member]
