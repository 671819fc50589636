"""DELETE /api/v1/users/{user_id}: a user erased at once, from PostgreSQL, Redis and every
process's versions, with a tombstone that keeps late copies of their interactions out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from common.settings import Settings
from service.events.relay import Relay
from tests.helpers import build_now, running
from tests.service.test_experiments import experiment, fans, recs, results_of, start, variants

# A fan of the first genre (tests/service/test_experiments.py), with neighbours of their taste.
ERASED = "fan-4"


async def traces_in_postgres(app: FastAPI, text: str) -> dict[str, int]:
    """Rows of every table whose text holds `text`, by table."""
    pool = app.state.application.pool
    tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    found = {}
    for row in tables:
        name = row["tablename"]
        count = await pool.fetchval(
            f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1', f"%{text}%"
        )
        if count:
            found[name] = count
    return found


async def traces_in_redis(redis: Redis, text: str) -> list[str]:
    """Keys of the deployment's Redis database whose name or contents hold `text`."""
    needle, found = text.encode(), []
    async for key in redis.scan_iter(count=1_000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            contents = [await redis.get(key) or b""]
        elif kind == "zset":
            contents = await redis.zrange(key, 0, -1)
        elif kind == "set":
            contents = list(await redis.smembers(key))
        elif kind == "list":
            contents = await redis.lrange(key, 0, -1)
        elif kind == "hash":
            contents = [b"".join(pair) for pair in (await redis.hgetall(key)).items()]
        elif kind == "stream":
            contents = [repr(e).encode() for e in await redis.xrange(key)]
        else:
            contents = []
        if needle in key or any(needle in c for c in contents):
            found.append(key.decode())
    return found


def similar_to(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [u["user_id"] for u in answer.json()["users"]]


async def test_an_erased_user_leaves_postgres_redis_and_every_process_at_once(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    await fans(client, app, 20)
    await start(client, experiment(variants=variants(("control", 1e6, {}), ("never", 1e-6, {}))))
    shown = await recs(client, ERASED, limit=3, experiment_id="exp")
    clicked = {
        "user_id": ERASED,
        "item_id": shown["items"][0]["item_id"],
        "type": "click",
        "event_id": "erased-click",
        "recommendation_id": shown["recommendation_id"],
    }
    assert (await client.post("/api/v1/interactions", json=clicked)).status_code == 202
    before = (await results_of(client, "exp"))["control"]
    assert before["clicks"] == 1
    neighbour = "fan-0"  # same genre
    async with running(settings) as (_, peer):
        assert ERASED in similar_to(await peer.get(f"/api/v1/users/{neighbour}/similar"))
        assert ERASED in similar_to(await client.get(f"/api/v1/users/{neighbour}/similar"))

        answer = await client.delete(f"/api/v1/users/{ERASED}")
        assert answer.status_code == 204, answer.text

        assert ERASED not in similar_to(await client.get(f"/api/v1/users/{neighbour}/similar"))
        for _ in range(50):  # the other process hears of it within moments
            if ERASED not in similar_to(await peer.get(f"/api/v1/users/{neighbour}/similar")):
                break
            await asyncio.sleep(0.1)
        assert ERASED not in similar_to(await peer.get(f"/api/v1/users/{neighbour}/similar"))
        for asked in (client, peer):
            cold = (await asked.get(f"/api/v1/recommendations/{ERASED}")).json()
            assert cold["strategy"] == "popular"
            assert similar_to(await asked.get(f"/api/v1/users/{ERASED}/similar")) == []

    # The one trace left: the user.erased event that names whom it erased, for the systems
    # downstream (published from the outbox, which then holds nothing of them either).
    res = app.state.application
    await res.events.ensure([res.settings.events.topic("events")])
    await Relay(res, res.events).publish_pending()
    assert await traces_in_postgres(app, ERASED) == {}
    events = res.settings.events.topic("events")
    assert await traces_in_redis(res.redis, ERASED) == [events]
    published = [orjson.loads(m.value) for m in await res.events.read(events, 100)]
    assert [e["type"] for e in published if e.get("user_id") == ERASED] == ["user.erased"]
    assert (await client.get(f"/api/v1/users/{ERASED}")).status_code == 404
    # What was counted stays counted, without the id.
    after = (await results_of(client, "exp"))["control"]
    assert (after["users"], after["impressions"], after["clicks"]) == (
        before["users"],
        before["impressions"],
        before["clicks"],
    )
    # Built afterwards: the version never knew them.
    version = await build_now(app, force=True)
    current = app.state.application.serving.current
    assert current.version == version, "the gate kept the new version back"
    assert ERASED not in current.user_ids


async def test_a_late_copy_is_dropped_and_a_later_interaction_makes_a_new_user(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 8)
    then = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    late: dict[str, Any] = {
        "user_id": ERASED,
        "item_id": "horror-1",
        "type": "like",
        "timestamp": then,
    }
    await client.post("/api/v1/interactions", json={**late, "event_id": "redelivered"})
    assert (await client.delete(f"/api/v1/users/{ERASED}")).status_code == 204
    # Redelivered with its event id, or without one (a retried batch): dropped either way.
    again = await client.post("/api/v1/interactions", json={**late, "event_id": "redelivered"})
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1}
    batch = {"interactions": [late, {**late, "user_id": "fan-0"}]}
    answer = await client.post("/api/v1/interactions/batch", json=batch)
    assert answer.json() == {"accepted": 1, "duplicates": 1}
    assert (await client.get(f"/api/v1/users/{ERASED}")).status_code == 404
    # Acting after the erasure: a new user, who starts from nothing.
    now = {**late, "timestamp": datetime.now(UTC).isoformat()}
    assert (await client.post("/api/v1/interactions", json=now)).json()["accepted"] == 1
    user = (await client.get(f"/api/v1/users/{ERASED}")).json()
    assert user["interaction_count"] == 1
    history = (await client.get(f"/api/v1/users/{ERASED}/interactions")).json()
    assert [i["item_id"] for i in history["interactions"]] == ["horror-1"]


async def test_erasing_an_unknown_id_is_a_204_and_needs_write(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    assert (await client.delete("/api/v1/users/nobody")).status_code == 204
    assert (await client.delete("/api/v1/users/nobody")).status_code == 204
    assert (await anonymous.delete("/api/v1/users/nobody")).status_code == 401
