"""Each API process holds the trending lists: requests never recompute what was published,
a missing list is computed once however many ask, and a lost Redis key changes nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from common.settings import Settings
from indexing import trending
from service import fill
from storage import trending as store
from tests.helpers import genre_catalog, until
from workers.pipeline import refresh_trending


@pytest.fixture
def window_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every read of a trending window from PostgreSQL, by its hours."""
    reads: list[int] = []
    real = store.window_rows

    async def counted(pool: Any, hours: int) -> Any:
        reads.append(hours)
        return await real(pool, hours)

    monkeypatch.setattr(store, "window_rows", counted)
    return reads


async def engaged(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(3)})
    rows = [{"user_id": f"u{n}", "item_id": f"horror-{n % 3}", "type": "like"} for n in range(12)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})


async def published(
    app: FastAPI, client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> trending.TrendingLists:
    """Engagement, then the lists a refresh job publishes, once this process holds them."""
    await engaged(client)
    res = app.state.application
    hours = settings.index.trending_window_hours
    lists = await refresh_trending(res.pool, redis, settings, hours)
    generation = await store.generation(redis, hours)
    await until(lambda: res.trending.generation == generation)
    return lists


def hot_answer(lists: trending.TrendingLists, limit: int = 10) -> list[str]:
    """What /trending answers from published lists: the hot items, then, where the window
    holds fewer, the popular ones of all history (service/fill.py)."""
    found = fill.filled(lists[("hot", None)][:limit], limit, lists[("popular", None)])
    return [i for i, _ in found]


async def test_published_lists_are_held_and_outlive_their_redis_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    redis: Redis,
    settings: Settings,
    window_reads: list[int],
) -> None:
    lists = await published(app, client, redis, settings)
    window_reads.clear()

    answers = await asyncio.gather(*(client.get("/api/v1/trending") for _ in range(30)))
    expected = hot_answer(lists)
    assert all([i["item_id"] for i in a.json()["items"]] == expected for a in answers)
    await redis.flushdb()  # a Redis restart, or a key lost
    after = await client.get("/api/v1/trending", params={"variant": "rising"})
    assert after.status_code == 200
    assert [i["item_id"] for i in after.json()["items"]] == [i for i, _ in lists[("rising", None)]][
        :10
    ]
    # A category nobody engaged with answers [] at once.
    none = await client.get("/api/v1/trending", params={"category": "Nowhere"})
    assert none.json()["items"] == []
    assert window_reads == []


async def test_a_missing_list_is_computed_once_however_many_ask(
    app: FastAPI, client: httpx.AsyncClient, window_reads: list[int]
) -> None:
    await engaged(client)
    answers = await asyncio.gather(
        *(client.get("/api/v1/trending", params={"window_hours": 5}) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {200}
    # (The default window is read too, once, for the popular lists a short list is filled
    # from, where no refresh job published them.)
    assert window_reads.count(5) == 1
    assert answers[0].json()["items"][0]["item_id"].startswith("horror-")
    # Kept a while: asking again reads nothing.
    await client.get("/api/v1/trending", params={"window_hours": 5, "category": "Horror"})
    assert window_reads.count(5) == 1


async def test_a_missed_announcement_is_caught_by_the_generation_check(
    app: FastAPI,
    client: httpx.AsyncClient,
    redis: Redis,
    settings: Settings,
) -> None:
    await engaged(client)
    res = app.state.application
    hours = settings.index.trending_window_hours
    lists = {("hot", None): [("horror-2", 9.0)]}
    # Published without the event, as if the announcement was lost.
    await store.publish_lists(redis, lists, hours, generation=424242)
    await until(lambda: res.trending.generation == 424242, seconds=15)
    body = (await client.get("/api/v1/trending")).json()
    assert [i["item_id"] for i in body["items"]] == ["horror-2"]


async def test_deleting_the_trending_keys_under_load_slows_no_request(
    app: FastAPI,
    client: httpx.AsyncClient,
    redis: Redis,
    settings: Settings,
    window_reads: list[int],
) -> None:
    lists = await published(app, client, redis, settings)
    res, hours = app.state.application, settings.index.trending_window_hours
    window_reads.clear()
    paths = [
        "/health",
        "/api/v1/trending",
        "/api/v1/trending?variant=rising",
        "/api/v1/trending?category=Horror",
        *(f"/api/v1/recommendations/u{n}" for n in range(6)),
    ]

    ended: list[float] = []

    async def timed(path: str) -> float:
        started = time.perf_counter()
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        ended.append(time.perf_counter())
        return ended[-1] - started

    async def waves(count: int) -> list[float]:
        taken: list[float] = []
        for _ in range(count):  # 16 requests in flight at a time
            taken += await asyncio.gather(*(timed(paths[n % len(paths)]) for n in range(16)))
        return taken

    usual = max(await waves(10))
    lost_at: list[float] = []

    async def lose_the_keys() -> None:
        # As a Redis restart would, while requests are in flight; then the periodic checks.
        await asyncio.sleep(0)  # let the first wave start
        assert await redis.delete(store.lists_key(hours), store.generation_key(hours)) == 2
        lost_at.append(time.perf_counter())
        for _ in range(3):
            await res.trending.reload()

    during, _ = await asyncio.gather(waves(30), lose_the_keys())
    # Most of the load ran after the keys were gone.
    assert sum(t > lost_at[0] for t in ended[-len(during) :]) > len(during) / 2
    assert max(during) <= usual + 1.0, (max(during), usual)
    assert window_reads == []  # nothing recomputed
    body = (await client.get("/api/v1/trending")).json()
    assert [i["item_id"] for i in body["items"]] == hot_answer(lists)
