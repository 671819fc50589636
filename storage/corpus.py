"""What builds read from PostgreSQL: items whose vectors are stale, the vectors themselves,
one consistent snapshot of the catalog and interactions, and marks that say it changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from common.snapshot import Snapshot
from common.text import item_labels, item_text
from storage.db import copy_numbers, copy_row, database_errors, refresh_statistics


@dataclass(frozen=True)
class Stale:
    """Live items whose stored vector is missing or was made from other text."""

    item_ids: list[str]
    content_hashes: list[str]
    texts: list[str]
    labels: list[str]  # common/text.py, `item_labels`


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
        labels=[item_labels(r["category"], r["tags"]) for r in rows],
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


# Live items with a vector of their current text, by item_id: the snapshot's item rows.
_LIVE = """
    SELECT i.item_id, i.title, i.category,
           extract(epoch FROM i.published_at) AS published, e.vector
    FROM items i
    JOIN item_embeddings e
      ON e.encoder = $1 AND e.item_id = i.item_id AND e.content_hash = i.content_hash
    WHERE i.deleted_at IS NULL"""

# Interactions on those items as fixed-width numbers: user row, item row, type (1-based, in
# $2), value (NaN for none) and time. The users are numbered by user_id, as the rows come.
_INTERACTIONS = f"""
    WITH live AS (SELECT item_id, row_number() OVER (ORDER BY item_id) - 1 AS row
                  FROM ({_LIVE}) l)
    SELECT dense_rank() OVER (ORDER BY x.user_id) - 1, live.row,
           array_position($2::text[], x.type), coalesce(x.value, 'NaN'),
           extract(epoch FROM x.occurred_at)::float8
    FROM interactions x JOIN live USING (item_id)
    ORDER BY x.user_id, x.occurred_at"""

_ROW = copy_row(("user", ">i8"), ("item", ">i8"), ("kind", ">i4"), ("value", ">f8"), ("at", ">f8"))


async def snapshot(pool: asyncpg.Pool, encoder: str, dimension: int) -> Snapshot:
    """Live items with a vector of their current text, and every interaction on them, read
    in one REPEATABLE READ transaction so that both are as of the same instant.

    The interactions (tens of millions at scale) come as one binary COPY of numbers, read
    straight into arrays: as rows of Python objects they took minutes and gigabytes."""
    with database_errors():
        async with pool.acquire() as conn:
            await refresh_statistics(conn, ("items", "item_embeddings", "interactions"))
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                as_of = await conn.fetchval("SELECT now()")
                items = await conn.fetch(_LIVE + " ORDER BY i.item_id", encoder)
                kinds = [
                    r["type"] for r in await conn.fetch("SELECT DISTINCT type FROM interactions")
                ]
                users = await conn.fetch(
                    f"""SELECT DISTINCT x.user_id FROM interactions x
                        JOIN ({_LIVE}) l USING (item_id) ORDER BY x.user_id""",
                    encoder,
                )
                rows = await copy_numbers(conn, _INTERACTIONS, _ROW, encoder, kinds)
    return _snapshot_of(as_of, items, [r["user_id"] for r in users], kinds, rows, dimension)


def _snapshot_of(
    as_of: datetime,
    items: Sequence[Any],
    user_ids: list[str],
    kinds: list[str],
    rows: npt.NDArray[np.void],
    dimension: int,
) -> Snapshot:
    vectors = np.empty((len(items), dimension), dtype=np.float32)
    for n, r in enumerate(items):
        vectors[n] = np.frombuffer(r["vector"], dtype=np.float32)
    values = rows["value"].astype(np.float64)
    missing = np.isnan(values)
    return Snapshot(
        as_of=as_of,
        item_ids=[r["item_id"] for r in items],
        titles=[r["title"] for r in items],
        categories=[r["category"] for r in items],
        published=np.array(
            [float(r["published"]) if r["published"] is not None else np.nan for r in items],
            dtype=np.float64,
        ),
        item_vectors=vectors,
        user_ids=user_ids,
        user_rows=rows["user"].astype(np.int64),
        item_rows=rows["item"].astype(np.int64),
        # Each type is one shared string; most histories have no values at all.
        kinds=np.array(kinds, dtype=object)[rows["kind"].astype(np.int64) - 1].tolist(),
        values=(
            [None] * len(values)
            if missing.all()
            else [None if m else v for v, m in zip(values.tolist(), missing.tolist(), strict=True)]
        ),
        times=rows["at"].astype(np.float64),
    )


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
