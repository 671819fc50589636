"""Trending lists: the window's interactions read from PostgreSQL, and the lists computed
from them published in Redis, one value per window, for every API process to hold."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np
import orjson
from redis.asyncio import Redis

from common.settings import InteractionSettings
from common.window import WindowRows
from storage.cache import redis_errors
from storage.db import copy_numbers, copy_row, database_errors, refresh_statistics
from storage.events import generation_key, lists_key, popular_key

TrendingLists = dict[tuple[str, str | None], list[tuple[str, float]]]


async def publish_lists(redis: Redis, lists: TrendingLists, hours: int, generation: int) -> None:
    """Replace one window's lists, all of them at once, as one value every API process reads
    whole. They stay until replaced: a missed refresh serves the last ones."""
    blob = orjson.dumps({"generation": generation, "lists": _encoded(lists)})
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


async def load_lists(redis: Redis, hours: int) -> tuple[int, TrendingLists] | None:
    """The window's published lists and their generation; None when none were published."""
    with redis_errors(redis, "reading trending lists"):
        blob = await redis.get(lists_key(hours))
    if blob is None:
        return None
    found = orjson.loads(blob)
    return int(found["generation"]), _decoded(found["lists"])


def _encoded(lists: TrendingLists) -> list[list[Any]]:
    return [[variant, category, ranked] for (variant, category), ranked in lists.items()]


def _decoded(stored: list[list[Any]]) -> TrendingLists:
    return {
        (variant, category): [(item_id, float(score)) for item_id, score in ranked]
        for variant, category, ranked in stored
    }


# The window's interactions on live items (the reading's own now() bounds it).
_WINDOW = """
    SELECT i.item_id, i.user_id, i.type, i.value, i.occurred_at
    FROM interactions i JOIN items it ON it.item_id = i.item_id
    WHERE i.occurred_at > now() - make_interval(hours => $1)
      AND i.occurred_at <= now() AND it.deleted_at IS NULL"""

# Per interaction, as fixed-width numbers: item code (by item_id in code point order), user
# code, type (1-based, in $2), value (NaN for none) and time.
_CODED = f"""
    SELECT dense_rank() OVER (ORDER BY w.item_id COLLATE "C") - 1,
           dense_rank() OVER (ORDER BY w.user_id COLLATE "C") - 1,
           array_position($2::text[], w.type), coalesce(w.value, 'NaN'),
           extract(epoch FROM w.occurred_at)::float8
    FROM ({_WINDOW}) w"""

_ROW = copy_row(("item", ">i8"), ("user", ">i8"), ("kind", ">i4"), ("value", ">f8"), ("at", ">f8"))


async def window_rows(pool: asyncpg.Pool, hours: int) -> WindowRows:
    """The interactions of the last `hours` on live items, as indexing/trending.py reads them:
    numbers from one binary COPY (tens of millions of rows as Python objects took minutes and
    gigabytes), and each item's category and date once, all in one REPEATABLE READ
    transaction, so both readings see the same window."""
    with database_errors():
        async with pool.acquire() as conn:
            await refresh_statistics(conn, ("items", "interactions"))
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                now = float(await conn.fetchval("SELECT extract(epoch FROM now())::float8"))
                items = await conn.fetch(
                    f"""SELECT it.item_id, it.category,
                               extract(epoch FROM coalesce(it.published_at, it.created_at))::float8
                                   AS published
                        FROM items it
                        WHERE it.item_id IN (SELECT item_id FROM ({_WINDOW}) w)
                        ORDER BY it.item_id COLLATE "C" """,
                    hours,
                )
                kinds = [
                    r["type"]
                    for r in await conn.fetch(f"SELECT DISTINCT type FROM ({_WINDOW}) w", hours)
                ]
                rows = await copy_numbers(conn, _CODED, _ROW, hours, kinds)
    return WindowRows(
        item_ids=[r["item_id"] for r in items],
        categories=[r["category"] for r in items],
        published=np.array([r["published"] for r in items], dtype=np.float64),
        kinds=kinds,
        items=rows["item"].astype(np.int64),
        users=rows["user"].astype(np.int64),
        kind_codes=rows["kind"].astype(np.int64) - 1,
        values=rows["value"].astype(np.float64),
        at=rows["at"].astype(np.float64),
        now=now,
    )


# Every live item by its all-history weight (positive interactions only), then newest
# first, so that a catalog with no interactions yet still has an order: the best `$4` of
# all and of each category. Type weights come as arrays ($1 names, $2 weights); a rating's
# value interpolates over the five weights in $3, as indexing/profiles.py does.
_POPULAR = """
WITH counted AS (
    SELECT i.item_id, i.type, i.value, count(*)::float8 AS n
    FROM interactions i GROUP BY i.item_id, i.type, i.value
), weighted AS (
    SELECT c.item_id,
           sum(c.n * greatest(0, CASE WHEN c.type = 'rating'
               THEN r.w[f.lo] + (s.v - f.lo) * (r.w[f.lo + 1] - r.w[f.lo])
               ELSE coalesce(t.weight, 0) END)) AS weight
    FROM counted c
    LEFT JOIN unnest($1::text[], $2::float8[]) AS t(type, weight) ON t.type = c.type
    CROSS JOIN LATERAL (SELECT least(greatest(coalesce(c.value, 3), 1), 5) AS v) s
    CROSS JOIN LATERAL (SELECT least(floor(s.v), 4)::int AS lo) f
    CROSS JOIN (SELECT $3::float8[] AS w) r
    GROUP BY c.item_id
), live AS (
    SELECT it.item_id, it.category, coalesce(w.weight, 0) AS weight,
           coalesce(it.published_at, it.created_at) AS at
    FROM items it LEFT JOIN weighted w ON w.item_id = it.item_id
    WHERE it.deleted_at IS NULL
), ranked AS (
    SELECT item_id, category, weight,
           row_number() OVER (ORDER BY weight DESC, at DESC, item_id COLLATE "C") AS overall,
           row_number() OVER (PARTITION BY category
                              ORDER BY weight DESC, at DESC, item_id COLLATE "C") AS within
    FROM live
)
SELECT item_id, category, weight, overall, within FROM ranked
WHERE overall <= $4 OR (within <= $4 AND category IS NOT NULL)
ORDER BY overall"""


async def popular_lists(
    pool: asyncpg.Pool, interactions: InteractionSettings, top: int
) -> TrendingLists:
    """Live items by all of their history, as ("popular", category or None) lists of at
    most `top` items: what a list falls back to where the trending window holds too little
    (storage reads it; indexing/trending.py has the window's lists)."""
    names = sorted(interactions.interaction_weights)
    with database_errors():
        async with pool.acquire() as conn:
            await refresh_statistics(conn, ("items", "interactions"))
            rows = await conn.fetch(
                _POPULAR,
                names,
                [interactions.interaction_weights[n] for n in names],
                list(interactions.rating_weights),
                top,
            )
    lists: TrendingLists = {("popular", None): []}
    for row in rows:  # in overall order, so each category's list is in order too
        pair = (row["item_id"], float(row["weight"]))
        if row["overall"] <= top:
            lists[("popular", None)].append(pair)
        if row["category"] is not None and row["within"] <= top:
            lists.setdefault(("popular", row["category"]), []).append(pair)
    return lists


async def load_popular(redis: Redis) -> tuple[dict[str, Any], TrendingLists] | None:
    """The stored popular lists and what they were computed at (marks, time)."""
    with redis_errors(redis, "reading the popular lists"):
        blob = await redis.get(popular_key())
    if blob is None:
        return None
    found = orjson.loads(blob)
    return found["computed"], _decoded(found["lists"])


async def store_popular(redis: Redis, lists: TrendingLists, computed: dict[str, Any]) -> None:
    blob = orjson.dumps({"computed": computed, "lists": _encoded(lists)})
    with redis_errors(redis, "storing the popular lists"):
        await redis.set(popular_key(), blob)


async def ask_once(redis: Redis, seconds: int) -> bool:
    """Whether this caller is the first to ask for fresh popular lists in `seconds`."""
    with redis_errors(redis, "asking for popular lists"):
        return bool(await redis.set(popular_key() + ":asked", 1, nx=True, ex=seconds))
