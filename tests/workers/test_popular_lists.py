"""When the refresh job computes the all-history popular lists again, and when it reuses the
ones it stored (workers/pipeline.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from common.settings import Settings
from storage import trending
from workers import pipeline


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per pass over the interactions."""
    passes: list[int] = []
    real = trending.popular_lists

    async def counted(*args: Any) -> trending.Lists:
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


async def test_items_changed_compute_at_once_interactions_alone_wait(
    db: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    computed: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _put(db, "a")
    await _put(db, "b")
    await _view(db, "b")
    first = await pipeline.popular_lists(db, redis, settings)
    assert [i for i, _ in first[("popular", None)]] == ["b", "a"] and len(computed) == 1

    # Nothing changed: the stored lists, without a pass over the interactions.
    assert await pipeline.popular_lists(db, redis, settings) == first
    # New interactions alone wait for the stored lists to age.
    await _view(db, "a")
    await _view(db, "a")
    assert await pipeline.popular_lists(db, redis, settings) == first
    assert len(computed) == 1
    monkeypatch.setattr(pipeline, "POPULAR_SECONDS", 0.0)
    aged = await pipeline.popular_lists(db, redis, settings)
    assert [i for i, _ in aged[("popular", None)]] == ["a", "b"] and len(computed) == 2

    # A catalog change is taken at once, however young the lists.
    monkeypatch.setattr(pipeline, "POPULAR_SECONDS", 3600.0)
    await db.execute("UPDATE items SET deleted_at = now() WHERE item_id = 'a'")
    after = await pipeline.popular_lists(db, redis, settings)
    assert [i for i, _ in after[("popular", None)]] == ["b"] and len(computed) == 3
    await _put(db, "c")
    assert [
        i for i, _ in (await pipeline.popular_lists(db, redis, settings))[("popular", None)]
    ] == [
        "b",
        "c",
    ]
    assert len(computed) == 4
