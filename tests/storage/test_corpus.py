"""The snapshot a build learns from, read from PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import numpy as np
import pytest

from storage import corpus

ENCODER = "test-encoder"
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def vector(*values: float) -> bytes:
    return np.array(values, dtype=np.float32).tobytes()


async def given(db: asyncpg.Pool) -> None:
    items = [
        # item_id, category, published, deleted, hash of its text, hash its vector was made from
        ("b", "books", T0, False, "h", "h"),
        ("a", None, None, False, "h", "h"),
        ("c", "books", None, True, "h", "h"),  # deleted
        ("d", None, None, False, "h", None),  # never embedded
        ("e", None, None, False, "new", "old"),  # its vector is of older text
    ]
    for item_id, category, published, deleted, content, embedded in items:
        await db.execute(
            """INSERT INTO items (item_id, title, category, published_at, content_hash,
                                  deleted_at)
               VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END)""",
            item_id,
            f"Title {item_id}",
            category,
            published,
            content,
            deleted,
        )
        if embedded is not None:
            await db.execute(
                """INSERT INTO item_embeddings (encoder, item_id, content_hash, vector)
                   VALUES ($1, $2, $3, $4)""",
                ENCODER,
                item_id,
                embedded,
                vector(ord(item_id), 0.5),
            )
    interactions = [
        ("zed", "a", "rating", 4.5, 30),
        ("zed", "b", "view", None, 10),
        ("amy", "b", "purchase", None, 20),
        ("amy", "a", "view", None, 5),
        ("bob", "c", "view", None, 1),  # only on items the snapshot leaves out
        ("bob", "d", "view", None, 2),
        ("cat", "e", "view", None, 3),
        ("cat", "a", "rating", 2.0, 4),
    ]
    await db.executemany(
        """INSERT INTO interactions (user_id, item_id, type, value, occurred_at)
           VALUES ($1, $2, $3, $4, $5::timestamptz + $6 * interval '1 second')""",
        [(u, i, kind, value, T0, seconds) for u, i, kind, value, seconds in interactions],
    )


async def test_a_snapshot_holds_live_embedded_items_and_the_interactions_on_them(
    db: asyncpg.Pool,
) -> None:
    await given(db)
    snapshot = await corpus.snapshot(db, ENCODER, 2)
    assert snapshot.item_ids == ["a", "b"]
    assert snapshot.titles == ["Title a", "Title b"]
    assert snapshot.categories == [None, "books"]
    assert np.isnan(snapshot.published[0]) and snapshot.published[1] == T0.timestamp()
    assert snapshot.item_vectors.tolist() == [[97.0, 0.5], [98.0, 0.5]]
    # Users by user_id, each one's interactions in time order; bob acted only on items that
    # are not in the snapshot, and cat's interaction with e is left out with e.
    assert snapshot.user_ids == ["amy", "cat", "zed"]
    assert snapshot.user_rows.tolist() == [0, 0, 1, 2, 2]
    assert snapshot.item_rows.tolist() == [0, 1, 0, 1, 0]
    assert snapshot.kinds == ["view", "purchase", "rating", "view", "rating"]
    assert snapshot.values == [None, None, 2.0, None, 4.5]
    assert snapshot.times.tolist() == pytest.approx(
        [T0.timestamp() + s for s in (5, 20, 4, 10, 30)]
    )
    assert snapshot.user_rows.dtype == np.int64 and snapshot.item_rows.dtype == np.int64


async def test_a_snapshot_of_nothing_is_empty(db: asyncpg.Pool) -> None:
    snapshot = await corpus.snapshot(db, ENCODER, 2)
    assert snapshot.item_ids == [] and snapshot.user_ids == [] and snapshot.kinds == []
    assert snapshot.item_vectors.shape == (0, 2) and len(snapshot.user_rows) == 0


async def test_views_alone_have_no_values(db: asyncpg.Pool) -> None:
    await given(db)
    await db.execute("DELETE FROM interactions WHERE type = 'rating'")
    snapshot = await corpus.snapshot(db, ENCODER, 2)
    assert snapshot.values == [None, None, None]
    assert snapshot.kinds == ["view", "purchase", "view"]
