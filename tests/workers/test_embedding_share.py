"""A build spreads its embedding over every worker, and never waits on one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from fastapi import FastAPI

from common.settings import Settings
from embeddings.encoder import item_vectors_key, make_encoder
from storage import corpus
from tests.helpers import genre_catalog
from workers.context import BuildContext
from workers.embedding import embed_missing


class Queued(BuildContext):
    """Shares as a worker's queue would, recording each piece; `taken` is done at once by
    another worker (its own encoder)."""

    def __init__(self, taken: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.pieces: list[list[str]] = []
        self.taken = taken

    @property
    def shares(self) -> bool:
        return True

    async def share(self, item_ids: list[str]) -> None:
        self.pieces.append(item_ids)
        if self.taken is not None:
            await self.taken(item_ids)


async def test_pieces_are_queued_and_met_in_the_middle(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Pool, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(10)})  # 40 items
    encoder = make_encoder(settings.embedding.model)
    others = make_encoder(settings.embedding.model)

    async def another_worker(piece: list[str]) -> None:
        if len(queued.pieces) <= 2:  # another worker takes the first two pieces at once
            await embed_missing(db, others, BuildContext(), piece)

    queued = Queued(another_worker)
    mine = await embed_missing(db, encoder, queued, chunk=16)
    assert [len(p) for p in queued.pieces] == [16, 16, 8]
    assert len({i for p in queued.pieces for i in p}) == 40
    assert mine == 8  # only the last piece was still stale when this process reached it
    assert (await corpus.stale_items(db, item_vectors_key(encoder), None)).item_ids == []


async def test_with_no_other_worker_every_piece_is_embedded_here(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Pool, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(10)})
    encoder = make_encoder(settings.embedding.model)
    queued = Queued()  # queued, but nobody takes them

    assert await embed_missing(db, encoder, queued, chunk=16) == 40
    assert len(queued.pieces) == 3
    assert (await corpus.stale_items(db, item_vectors_key(encoder), None)).item_ids == []
    # Small work is not shared at all.
    queued.pieces.clear()
    await client.put("/api/v1/items/horror-0", json={"title": "A new title"})
    assert await embed_missing(db, encoder, queued, chunk=16) == 1
    assert queued.pieces == []
