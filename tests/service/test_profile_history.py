"""A profile refresh reads a bounded slice of history: the user's newest interactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from common.settings import Settings
from service.profiles import refresh
from storage.events import profile_key


async def test_a_long_history_is_refreshed_from_its_newest_interactions(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, redis: Redis, settings: Settings
) -> None:
    items = [{"item_id": f"i{n}", "title": f"Item {n}"} for n in range(60)]
    await client.post("/api/v1/items/batch", json={"items": items})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "user_id": "long",
            "item_id": f"i{n}",
            "type": "view",
            "timestamp": (start + timedelta(minutes=n)).isoformat(),
        }
        for n in range(60)
    ]
    assert (
        await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    ).status_code == 202
    await app.state.application.refresher.flush()  # the full refresh the write queued is done
    bounded = settings.model_copy(
        update={"index": settings.index.model_copy(update={"profile_history": 10})}
    )
    await refresh(db, redis, bounded, None, ["long"])
    stored = orjson.loads(await redis.get(profile_key("long")))
    assert stored["count"] == 10
    assert stored["seen"] == sorted(f"i{n}" for n in range(50, 60))
    assert stored["liked"][0] == "i59"
