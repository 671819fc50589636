"""Embedding the items whose text changed: a build's first stage, and a task of its own
after catalog writes. Vectors are stored in PostgreSQL (storage/corpus.py), keyed by the
encoder, so that any worker's work serves every build."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from embeddings.encoder import Encoder, chunks_by_length, embed_items, item_vectors_key
from storage import corpus
from workers.context import BuildContext


async def embed_missing(
    pool: asyncpg.Pool,
    encoder: Encoder,
    context: BuildContext,
    item_ids: list[str] | None = None,
    *,
    chunk: int = 256,
    span: tuple[float, float] = (0.0, 1.0),
) -> int:
    """Embed live items whose text changed since their stored vector (or that have none);
    `item_ids` limits the work to those items. Returns how many this process embedded. The
    stage "embedding" is reported to `context` as it goes, across `span` of the progress.

    Where the context shares work, more than one `chunk` of stale items is spread over every
    running worker: each piece is queued, and this process works through the same pieces
    from the last one back while the others take them from the front. A piece another
    worker has stored is no longer stale when this one reaches it, so the pieces meet in the
    middle; one still in another's hands is embedded here too (the same vectors, stored
    twice), so the result never waits on a worker that may not exist or may die.
    """
    key = item_vectors_key(encoder)
    stale = await corpus.stale_items(pool, key, item_ids)
    start, end = span
    if context.shares and len(stale.item_ids) > chunk:
        pieces = [stale.item_ids[n : n + chunk] for n in range(0, len(stale.item_ids), chunk)]
        for piece in pieces:
            await context.share(piece)
        done = 0
        for n, piece in enumerate(reversed(pieces)):
            done += await _embed(pool, encoder, key, await corpus.stale_items(pool, key, piece))
            await context.report("embedding", start + (end - start) * (n + 1) / len(pieces))
        return done

    async def embedded(done: int) -> None:
        await context.report("embedding", start + (end - start) * done / len(stale.texts))

    return await _embed(pool, encoder, key, stale, embedded)


async def _embed(
    pool: asyncpg.Pool,
    encoder: Encoder,
    key: str,
    stale: corpus.Stale,
    embedded: Callable[[int], Awaitable[None]] | None = None,
) -> int:
    """Embed and store `stale` items in batches of similar length; `embedded` hears how
    many are done after each batch."""
    done = 0
    for rows in chunks_by_length(stale.texts):
        vectors = await asyncio.to_thread(
            embed_items, encoder, [stale.texts[n] for n in rows], [stale.labels[n] for n in rows]
        )
        await corpus.store_vectors(
            pool,
            key,
            [stale.item_ids[n] for n in rows],
            [stale.content_hashes[n] for n in rows],
            [v.tobytes() for v in vectors],
        )
        done += len(rows)
        if embedded is not None:
            await embedded(done)
    return done
