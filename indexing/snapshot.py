"""What a build reads from PostgreSQL: live items with their vectors, and every interaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np
import numpy.typing as npt

from embeddings.encoder import Encoder, Vectors
from embeddings.text import item_text

Progress = Callable[[float], Awaitable[None]]
EMBED_CHUNK = 512


@dataclass(frozen=True)
class Snapshot:
    """The catalog and interactions as of one instant (one REPEATABLE READ transaction)."""

    as_of: datetime
    item_ids: list[str]
    titles: list[str]
    categories: list[str | None]
    published: npt.NDArray[np.float64]  # epoch seconds, NaN when unknown
    item_vectors: Vectors
    user_ids: list[str]
    user_rows: npt.NDArray[np.int64]  # per interaction
    item_rows: npt.NDArray[np.int64]  # per interaction
    kinds: list[str]
    values: list[float | None]
    times: npt.NDArray[np.float64]  # epoch seconds


async def embed_missing(
    pool: asyncpg.Pool, encoder: Encoder, progress: Progress, item_ids: list[str] | None = None
) -> int:
    """Embed live items whose text changed since their stored vector (or that have none).

    Returns how many were embedded. `item_ids` limits the work to those items.
    """
    rows = await pool.fetch(
        """SELECT i.item_id, i.title, i.description, i.category, i.tags, i.content_hash
           FROM items i
           LEFT JOIN item_embeddings e ON e.encoder = $1 AND e.item_id = i.item_id
           WHERE i.deleted_at IS NULL
             AND e.content_hash IS DISTINCT FROM i.content_hash
             AND ($2::text[] IS NULL OR i.item_id = ANY($2))
           ORDER BY i.item_id""",
        encoder.name,
        item_ids,
    )
    texts = [item_text(r["title"], r["description"], r["category"], r["tags"]) for r in rows]
    # Chunks of texts of similar length pad less: the model's cost follows the longest text of
    # each batch.
    order = sorted(range(len(rows)), key=lambda n: len(texts[n]))
    rows = [rows[n] for n in order]
    texts = [texts[n] for n in order]
    for start in range(0, len(rows), EMBED_CHUNK):
        chunk = rows[start : start + EMBED_CHUNK]
        vectors = await asyncio.to_thread(encoder.encode, texts[start : start + EMBED_CHUNK])
        await pool.execute(
            """INSERT INTO item_embeddings (encoder, item_id, content_hash, vector)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bytea[])
               ON CONFLICT (encoder, item_id) DO UPDATE
               SET content_hash = EXCLUDED.content_hash, vector = EXCLUDED.vector,
                   embedded_at = now()""",
            encoder.name,
            [r["item_id"] for r in chunk],
            [r["content_hash"] for r in chunk],
            [v.tobytes() for v in vectors],
        )
        await progress(min(start + EMBED_CHUNK, len(rows)) / len(rows))
    return len(rows)


async def take(pool: asyncpg.Pool, encoder: Encoder) -> Snapshot:
    """Read everything a build needs in one consistent transaction."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        as_of: datetime = await conn.fetchval("SELECT now()")
        items = await conn.fetch(
            """SELECT i.item_id, i.title, i.category,
                      extract(epoch FROM i.published_at) AS published, e.vector
               FROM items i
               JOIN item_embeddings e
                 ON e.encoder = $1 AND e.item_id = i.item_id AND e.content_hash = i.content_hash
               WHERE i.deleted_at IS NULL
               ORDER BY i.item_id""",
            encoder.name,
        )
        interactions = await conn.fetch(
            """SELECT user_id, item_id, type, value, extract(epoch FROM occurred_at) AS at
               FROM interactions ORDER BY user_id, occurred_at"""
        )
    item_ids = [r["item_id"] for r in items]
    position = {item_id: n for n, item_id in enumerate(item_ids)}
    dimension = encoder.dimension
    vectors = (
        np.frombuffer(b"".join(r["vector"] for r in items), dtype=np.float32)
        .reshape(len(items), dimension)
        .copy()
        if items
        else np.zeros((0, dimension), dtype=np.float32)
    )
    user_ids: list[str] = []
    user_position: dict[str, int] = {}
    user_rows, item_rows, kinds, values, times = [], [], [], [], []
    for r in interactions:
        row = position.get(r["item_id"])
        if row is None:  # deleted, or not embedded: no vector to learn from
            continue
        user = user_position.get(r["user_id"])
        if user is None:
            user = user_position[r["user_id"]] = len(user_ids)
            user_ids.append(r["user_id"])
        user_rows.append(user)
        item_rows.append(row)
        kinds.append(r["type"])
        values.append(r["value"])
        times.append(float(r["at"]))
    return Snapshot(
        as_of=as_of,
        item_ids=item_ids,
        titles=[r["title"] for r in items],
        categories=[r["category"] for r in items],
        published=np.array(
            [float(r["published"]) if r["published"] is not None else np.nan for r in items],
            dtype=np.float64,
        ),
        item_vectors=vectors,
        user_ids=user_ids,
        user_rows=np.array(user_rows, dtype=np.int64),
        item_rows=np.array(item_rows, dtype=np.int64),
        kinds=kinds,
        values=values,
        times=np.array(times, dtype=np.float64),
    )
