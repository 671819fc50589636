"""Trending lists: the window's interactions read from PostgreSQL, and the lists computed
from them published in Redis, one value per window, for every API process to hold."""

from __future__ import annotations

import asyncpg
import orjson
from redis.asyncio import Redis

from storage.cache import redis_errors
from storage.db import database_errors
from storage.events import generation_key, lists_key

Lists = dict[tuple[str, str | None], list[tuple[str, float]]]


async def publish_lists(redis: Redis, lists: Lists, hours: int, generation: int) -> None:
    """Replace one window's lists, all of them at once, as one value every API process reads
    whole. They stay until replaced: a missed refresh serves the last ones."""
    blob = orjson.dumps(
        {
            "generation": generation,
            "lists": [[variant, category, ranked] for (variant, category), ranked in lists.items()],
        }
    )
    with redis_errors(redis, "storing trending lists"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(lists_key(hours), blob)
            pipe.set(generation_key(hours), generation)
            await pipe.execute()


async def generation(redis: Redis, hours: int) -> int | None:
    """The generation of the window's published lists (a cheap read), None if none."""
    with redis_errors(redis, "reading the trending generation"):
        found = await redis.get(generation_key(hours))
    return int(found) if found is not None else None


async def load_lists(redis: Redis, hours: int) -> tuple[int, Lists] | None:
    """The window's published lists and their generation; None when none were published."""
    with redis_errors(redis, "reading trending lists"):
        blob = await redis.get(lists_key(hours))
    if blob is None:
        return None
    found = orjson.loads(blob)
    lists: Lists = {
        (variant, category): [(item_id, float(score)) for item_id, score in ranked]
        for variant, category, ranked in found["lists"]
    }
    return int(found["generation"]), lists


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
