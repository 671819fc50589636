"""Live items by all of their history, read from PostgreSQL as lists (storage/trending.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from common.settings import InteractionSettings
from storage import trending


async def _items(db: asyncpg.Pool, *rows: tuple[str, str | None, int, bool]) -> None:
    """(item_id, category, days since published, deleted)"""
    now = datetime.now(UTC)
    for item_id, category, age, deleted in rows:
        await db.execute(
            """INSERT INTO items (item_id, title, category, published_at, content_hash,
                                  deleted_at)
               VALUES ($1, 'T', $2, $3, 'h', CASE WHEN $4 THEN now() END)""",
            item_id,
            category,
            now - timedelta(days=age),
            deleted,
        )


async def test_live_items_rank_by_their_whole_history_then_newest_first(
    db: asyncpg.Pool,
) -> None:
    await _items(
        db,
        ("viewed", "x", 30, False),
        ("bought", "y", 30, False),
        ("rated", "x", 30, False),
        ("panned", "x", 30, False),
        ("new", "x", 1, False),
        ("newer", None, 0, False),
        ("gone", "x", 30, False),
    )
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)  # far outside any trending window
    rows = [
        ("a", "viewed", "view", None),
        ("b", "viewed", "view", None),
        ("a", "bought", "purchase", None),
        ("a", "rated", "rating", 4.5),  # halfway between 2 and 3
        ("b", "panned", "rating", 1.0),  # -2: counts as nothing
        *[(u, "gone", "view", None) for u in "abcdefgh"],
    ]
    await db.executemany(
        """INSERT INTO interactions (user_id, item_id, type, value, occurred_at)
           VALUES ($1, $2, $3, $4, $5)""",
        [(*row, long_ago) for row in rows],
    )
    await db.execute("UPDATE items SET deleted_at = now() WHERE item_id = 'gone'")

    lists = await trending.popular_lists(db, InteractionSettings(), top=10)

    overall = lists[("popular", None)]
    assert [i for i, _ in overall] == ["bought", "rated", "viewed", "newer", "new", "panned"]
    scores = dict(overall)
    assert scores["bought"] == 3.0 and scores["viewed"] == 2.0
    assert scores["rated"] == pytest.approx(2.5)
    assert scores["new"] == scores["panned"] == 0.0  # no positive history: newest first
    assert [i for i, _ in lists[("popular", "x")]] == ["rated", "viewed", "new", "panned"]
    assert [i for i, _ in lists[("popular", "y")]] == ["bought"]
    assert ("popular", "z") not in lists
    # At most `top` of each.
    short = await trending.popular_lists(db, InteractionSettings(), top=2)
    assert [i for i, _ in short[("popular", None)]] == ["bought", "rated"]
    assert [i for i, _ in short[("popular", "x")]] == ["rated", "viewed"]


async def test_no_live_item_makes_empty_lists(db: asyncpg.Pool) -> None:
    assert await trending.popular_lists(db, InteractionSettings(), top=10) == {
        ("popular", None): []
    }
