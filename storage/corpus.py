"""What builds read from PostgreSQL: items whose vectors are stale, the vectors themselves,
one consistent snapshot of the catalog and interactions, and marks that say it changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from common.snapshot import Snapshot
from common.text import item_text
from storage.db import database_errors


@dataclass(frozen=True)
class Stale:
    """Live items whose stored vector is missing or was made from other text."""

    item_ids: list[str]
    content_hashes: list[str]
    texts: list[str]


async def stale_items(pool: asyncpg.Pool, encoder: str, item_ids: list[str] | None) -> Stale:
    """`item_ids` limits the answer to those items; None means every live item."""
    with database_errors():
        rows = await pool.fetch(
            """SELECT i.item_id, i.title, i.description, i.category, i.tags, i.content_hash
               FROM items i
               LEFT JOIN item_embeddings e ON e.encoder = $1 AND e.item_id = i.item_id
               WHERE i.deleted_at IS NULL
                 AND e.content_hash IS DISTINCT FROM i.content_hash
                 AND ($2::text[] IS NULL OR i.item_id = ANY($2))
               ORDER BY i.item_id""",
            encoder,
            item_ids,
        )
    return Stale(
        item_ids=[r["item_id"] for r in rows],
        content_hashes=[r["content_hash"] for r in rows],
        texts=[item_text(r["title"], r["description"], r["category"], r["tags"]) for r in rows],
    )


async def store_vectors(
    pool: asyncpg.Pool,
    encoder: str,
    item_ids: Sequence[str],
    content_hashes: Sequence[str],
    vectors: Sequence[bytes],
) -> None:
    """Keep each item's vector with the hash of the text it was made from."""
    with database_errors():
        await pool.execute(
            """INSERT INTO item_embeddings (encoder, item_id, content_hash, vector)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bytea[])
               ON CONFLICT (encoder, item_id) DO UPDATE
               SET content_hash = EXCLUDED.content_hash, vector = EXCLUDED.vector,
                   embedded_at = now()""",
            encoder,
            list(item_ids),
            list(content_hashes),
            list(vectors),
        )


async def snapshot(pool: asyncpg.Pool, encoder: str, dimension: int) -> Snapshot:
    """Live items with a vector of their current text, and every interaction, read in one
    REPEATABLE READ transaction so that both are as of the same instant."""
    with database_errors():
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            as_of = await conn.fetchval("SELECT now()")
            items = await conn.fetch(
                """SELECT i.item_id, i.title, i.category,
                          extract(epoch FROM i.published_at) AS published, e.vector
                   FROM items i
                   JOIN item_embeddings e
                     ON e.encoder = $1 AND e.item_id = i.item_id
                    AND e.content_hash = i.content_hash
                   WHERE i.deleted_at IS NULL
                   ORDER BY i.item_id""",
                encoder,
            )
            interactions = await conn.fetch(
                """SELECT user_id, item_id, type, value, extract(epoch FROM occurred_at) AS at
                   FROM interactions ORDER BY user_id, occurred_at"""
            )
    return Snapshot.of_rows(as_of, items, interactions, dimension)


async def change_marks(pool: asyncpg.Pool) -> dict[str, Any]:
    """Cheap marks that move whenever the catalog or the interactions change."""
    with database_errors():
        row = await pool.fetchrow(
            """SELECT (SELECT coalesce(max(interaction_id), 0) FROM interactions)
                          AS last_interaction,
                      (SELECT count(*) FROM items) AS item_rows,
                      (SELECT coalesce(extract(epoch FROM max(greatest(updated_at, deleted_at))),
                                       0)
                       FROM items) AS items_changed"""
        )
    assert row is not None
    return {
        "last_interaction": int(row["last_interaction"]),
        "item_rows": int(row["item_rows"]),
        "items_changed": float(row["items_changed"]),
    }
