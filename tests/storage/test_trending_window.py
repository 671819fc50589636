"""A trending window's interactions, read from PostgreSQL as numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from storage import trending


async def test_a_window_holds_the_recent_interactions_on_live_items_as_codes(
    db: asyncpg.Pool,
) -> None:
    published = datetime(2026, 5, 1, tzinfo=UTC)
    for item_id, category, deleted in (("b", "x", False), ("B", None, False), ("gone", "x", True)):
        await db.execute(
            """INSERT INTO items (item_id, title, category, published_at, content_hash,
                                  deleted_at)
               VALUES ($1, 'T', $2, $3, 'h', CASE WHEN $4 THEN now() END)""",
            item_id,
            category,
            published,
            deleted,
        )
    now = datetime.now(UTC)
    rows = [
        ("zoe", "b", "rating", 4.0, now - timedelta(hours=1)),
        ("al", "B", "view", None, now - timedelta(hours=2)),
        ("zoe", "B", "view", None, now - timedelta(hours=3)),
        ("al", "gone", "view", None, now - timedelta(hours=1)),  # a deleted item
        ("al", "b", "view", None, now - timedelta(hours=30)),  # before the window
    ]
    await db.executemany(
        """INSERT INTO interactions (user_id, item_id, type, value, occurred_at)
           VALUES ($1, $2, $3, $4, $5)""",
        rows,
    )
    window = await trending.window_rows(db, 24)
    assert window.item_ids == ["B", "b"]  # code point order, whatever the collation
    assert window.categories == [None, "x"]
    assert window.published.tolist() == [published.timestamp()] * 2
    assert sorted(window.kinds) == ["rating", "view"]
    got = sorted(
        zip(
            window.items.tolist(),
            [window.kinds[k] for k in window.kind_codes],
            [None if np.isnan(v) else v for v in window.values.tolist()],
            window.at.tolist(),
            strict=True,
        ),
        key=lambda row: row[3],
    )
    assert [g[:3] for g in got] == [(0, "view", None), (0, "view", None), (1, "rating", 4.0)]
    assert [round(window.now - g[3]) for g in got] == [3 * 3600, 2 * 3600, 3600]
    # zoe's two interactions share a code, al's is another.
    by_time = np.argsort(window.at)
    users = window.users[by_time].tolist()
    assert users[0] == users[2] != users[1]


async def test_an_empty_window_reads_as_empty(db: asyncpg.Pool) -> None:
    window = await trending.window_rows(db, 24)
    assert window.item_ids == [] and len(window.items) == 0 and window.kinds == []
