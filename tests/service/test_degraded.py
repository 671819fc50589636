"""Redis down: reads answer from what the process holds, writes are stored and their profile
refresh waits in PostgreSQL; a refresh queued by a process that stopped is done by another."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from common.models import InteractionIn
from common.settings import Settings
from service.api.main import create_app
from storage import activity
from storage.events import profile_key
from tests.helpers import build_now, genre_catalog


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    """A client of a port nothing listens on: every call is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    client: Redis = Redis.from_url(
        f"redis://127.0.0.1:{closed}/0", socket_connect_timeout=1, socket_timeout=1
    )
    yield client
    await client.aclose()


async def fan_and_catalog(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(4)})
    rows = [{"user_id": "fan", "item_id": f"horror-{k}", "type": "like"} for k in range(3)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.refresher.flush()
    await build_now(app)


async def test_with_redis_down_reads_degrade_and_writes_are_kept(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    redis: Redis,
    dead_redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fan_and_catalog(app, client)
    res = app.state.application
    for holder in (res, res.refresher, res.serving, res.trending):
        monkeypatch.setattr(holder, "redis", dead_redis)

    started = time.monotonic()
    answer = await client.get("/api/v1/recommendations/fan")
    assert answer.status_code == 200, answer.text
    assert answer.json()["strategy"] == "hybrid" and answer.json()["items"]
    assert (await client.get("/api/v1/users/fan/similar")).status_code == 200
    # Trending is computed in this process from PostgreSQL when none is published.
    trending = await client.get("/api/v1/trending")
    assert trending.status_code == 200 and trending.json()["items"], trending.text

    one = {"user_id": "fan", "item_id": "space-1", "type": "like", "event_id": "e-1"}
    assert (await client.post("/api/v1/interactions", json=one)).status_code == 202
    assert (await client.delete("/api/v1/items/comedy-1")).status_code == 204
    assert time.monotonic() - started < 10
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE event_id = 'e-1'") == 1
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM items WHERE item_id = 'comedy-1'")
    assert await db.fetchval("SELECT count(*) FROM profile_refresh WHERE user_id = 'fan'") == 1

    # Redis is back: the queued refresh lands, and the queue empties.
    monkeypatch.undo()
    await res.refresher.flush()
    stored = orjson.loads(await redis.get(profile_key("fan")))
    assert "space-1" in stored["seen"]
    assert await db.fetchval("SELECT count(*) FROM profile_refresh") == 0


async def test_refreshes_a_stopped_process_left_queued_are_done_by_another(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, redis: Redis, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(4)})
    await app.state.application.refresher.flush()
    # Stored and queued exactly as the batch route stores them, but no process was told:
    # as if the one that answered 202 died at once.
    rows = [
        InteractionIn(user_id=f"u{n}", item_id=f"space-{n % 4}", type="view") for n in range(50)
    ]
    assert await activity.record_interactions(db, rows) == (50, 0)
    assert await db.fetchval("SELECT count(*) FROM profile_refresh") == 50

    other = create_app(settings)
    async with other.router.lifespan_context(other):
        deadline = time.monotonic() + 10
        while await db.fetchval("SELECT count(*) FROM profile_refresh"):
            assert time.monotonic() < deadline, "the queued refreshes were never done"
            await asyncio.sleep(0.05)
    assert all([await redis.exists(profile_key(f"u{n}")) for n in range(50)])
