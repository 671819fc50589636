"""A build spreads its embedding over every worker, and never waits on one."""

from __future__ import annotations

import asyncpg
import httpx
from fastapi import FastAPI

from common.settings import Settings
from embeddings.encoder import item_vectors_key, make_encoder
from storage import corpus
from tests.helpers import genre_catalog
from workers.pipeline import embed_missing


async def quiet(_stage: str, _progress: float) -> None:
    return None


async def test_pieces_are_queued_and_met_in_the_middle(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Pool, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(10)})  # 40 items
    encoder = make_encoder(settings.embedding.model)
    queued: list[list[str]] = []
    others = make_encoder(settings.embedding.model)

    async def share(piece: list[str]) -> None:
        queued.append(piece)
        if len(queued) <= 2:  # another worker takes the first two pieces at once
            await embed_missing(db, others, quiet, piece)

    mine = await embed_missing(db, encoder, quiet, share=share, chunk=16)
    assert [len(p) for p in queued] == [16, 16, 8]
    assert len({i for p in queued for i in p}) == 40
    assert mine == 8  # only the last piece was still stale when this process reached it
    assert (await corpus.stale_items(db, item_vectors_key(encoder), None)).item_ids == []


async def test_with_no_other_worker_every_piece_is_embedded_here(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Pool, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(10)})
    encoder = make_encoder(settings.embedding.model)
    queued: list[list[str]] = []

    async def share(piece: list[str]) -> None:
        queued.append(piece)  # queued, but nobody takes it

    assert await embed_missing(db, encoder, quiet, share=share, chunk=16) == 40
    assert len(queued) == 3
    assert (await corpus.stale_items(db, item_vectors_key(encoder), None)).item_ids == []
    # Small work is not shared at all.
    queued.clear()
    await client.put("/api/v1/items/horror-0", json={"title": "A new title"})
    assert await embed_missing(db, encoder, quiet, share=share, chunk=16) == 1
    assert queued == []
