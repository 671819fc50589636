"""When the refresh job computes the all-history popular lists again, and when it reuses the
ones it stored (workers/pipeline.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from common.errors import DatabaseUnavailable
from common.settings import Settings
from storage import trending
from workers import pipeline


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per pass over the interactions."""
    passes: list[int] = []
    real = trending.popular_lists

    async def counted(*args: Any) -> trending.TrendingLists:
        passes.append(1)
        return await real(*args)

    monkeypatch.setattr(trending, "popular_lists", counted)
    return passes


async def _put(db: asyncpg.Pool, item_id: str) -> None:
    await db.execute(
        "INSERT INTO items (item_id, title, content_hash) VALUES ($1, 'T', 'h')", item_id
    )


async def _view(db: asyncpg.Pool, item_id: str) -> None:
    await db.execute(
        """INSERT INTO interactions (user_id, item_id, type, occurred_at)
           VALUES ('u', $1, 'view', now())""",
        item_id,
    )


async def test_full_lists_wait_for_changes_unless_their_items_are_gone(
    db: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    computed: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline.trending, "TOP", 2)  # lists of two items are full
    for item_id in ("a", "b", "c"):
        await _put(db, item_id)
    await _view(db, "b")
    await _view(db, "a")
    await _view(db, "a")
    first = await pipeline.popular(db, redis, settings)
    assert [i for i, _ in first[("popular", None)]] == ["a", "b"] and len(computed) == 1

    # Nothing changed, or only new interactions on lists still young: the stored ones.
    assert await pipeline.popular(db, redis, settings) == first
    for _ in range(3):
        await _view(db, "c")
    assert await pipeline.popular(db, redis, settings) == first
    # Half of their items gone: they still serve (the API leaves deleted items out).
    await db.execute("UPDATE items SET deleted_at = now() WHERE item_id = 'b'")
    assert await pipeline.popular(db, redis, settings) == first
    assert len(computed) == 1
    # Once they are old, computed again.
    monkeypatch.setattr(pipeline, "POPULAR_SECONDS", 0.0)
    aged = await pipeline.popular(db, redis, settings)
    assert [i for i, _ in aged[("popular", None)]] == ["c", "a"] and len(computed) == 2

    # Most of their items gone (a catalog replaced): computed at once, however young.
    monkeypatch.setattr(pipeline, "POPULAR_SECONDS", 3600.0)
    await db.execute("UPDATE items SET deleted_at = now() WHERE item_id IN ('a', 'c')")
    await _put(db, "new")
    after = await pipeline.popular(db, redis, settings)
    assert [i for i, _ in after[("popular", None)]] == ["new"] and len(computed) == 3
    # A list shorter than TOP named every live item: a new one joins at once.
    await _put(db, "newer")
    assert [i for i, _ in (await pipeline.popular(db, redis, settings))[("popular", None)]] == [
        "newer",
        "new",
    ]


async def test_the_stored_lists_serve_while_postgresql_cannot_compute_them(
    db: asyncpg.Pool, redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _put(db, "a")
    first = await pipeline.popular(db, redis, settings)
    await _put(db, "b")

    async def down(*args: Any) -> trending.TrendingLists:
        raise DatabaseUnavailable("the database did not answer in time")

    monkeypatch.setattr(trending, "popular_lists", down)
    assert await pipeline.popular(db, redis, settings) == first
    await redis.flushdb()
    assert await pipeline.popular(db, redis, settings) == {}
