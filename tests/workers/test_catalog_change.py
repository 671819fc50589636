"""A catalog replaced under a built version: answers stay full of live items at once, the
rebuild on the harder catalog goes live, and a build on shuffled data is still refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np
from fastapi import FastAPI
from redis.asyncio import Redis

from tests.helpers import build_now, genre_catalog
from tests.indexing.test_gate import send_genre_fans
from workers.pipeline import refresh_trending

START = datetime(2026, 1, 1, tzinfo=UTC)  # long before any trending window


def second_catalog() -> list[dict[str, Any]]:
    """The same genres under other ids: a shop's new catalog."""
    return [{**item, "item_id": "new-" + item["item_id"]} for item in genre_catalog(40)]


async def send_mixed_tastes(client: httpx.AsyncClient) -> None:
    """200 users of two genres each, with a stray item: a harder catalog than genre fans."""
    catalog = second_catalog()
    by_genre: dict[str, list[str]] = {}
    for item in catalog:
        by_genre.setdefault(item["category"], []).append(item["item_id"])
    genres = sorted(by_genre)
    rng = np.random.default_rng(11)
    rows = []
    for user in range(200):
        first, second = genres[user % 4], genres[(user // 4) % 4]
        picked = [*rng.choice(by_genre[first], 6, replace=False)]
        picked += [*rng.choice(by_genre[second], 4, replace=False)]
        picked.append(str(rng.choice([i["item_id"] for i in catalog])))
        for n, item_id in enumerate(dict.fromkeys(picked)):
            at = START + timedelta(days=30, hours=user, minutes=n)
            rows.append(
                {
                    "user_id": f"b{user}",
                    "item_id": item_id,
                    "type": "view",
                    "timestamp": at.isoformat(),
                }
            )
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202, answer.text


async def refresh_lists(app: FastAPI, redis: Redis) -> None:
    """What the worker's refresh job does every minute (and when the catalog changes)."""
    res = app.state.application
    await refresh_trending(res.pool, redis, res.settings, res.settings.index.trending_window_hours)
    await res.trending.reload()


async def test_a_replaced_catalog_answers_at_once_and_its_harder_rebuild_goes_live(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, redis: Redis
) -> None:
    await send_genre_fans(client)
    first = await build_now(app)
    assert first is not None

    # The shop replaces its catalog: every item deleted, the new one put, its history sent.
    old = [i["item_id"] for i in genre_catalog()]
    for item_id in old:
        assert (await client.delete(f"/api/v1/items/{item_id}")).status_code == 204
    await client.post("/api/v1/items/batch", json={"items": second_catalog()})
    await send_mixed_tastes(client)
    await app.state.application.drain()
    await refresh_lists(app, redis)

    # Before the rebuild every answer is full of live items: users the version knows, users
    # of the new catalog, users no one knows; in a category too; similar items as well.
    live = {i["item_id"] for i in second_catalog()}
    for user, params in (
        ("u3", {}),
        ("b7", {}),
        ("nobody", {}),
        ("b7", {"category": "Horror"}),
        ("u3", {"limit": 20, "offset": 5}),
    ):
        answer = (await client.get(f"/api/v1/recommendations/{user}", params=params)).json()
        items = [i["item_id"] for i in answer["items"]]
        assert len(items) == params.get("limit", 10), (user, params, answer)
        assert set(items) <= live, (user, items)
        assert answer["index_version"] == first
        scores = [i["score"] for i in answer["items"]]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0
    # Users who viewed new items do not get them back.
    seen = {
        r["item_id"]
        for r in await db.fetch("SELECT item_id FROM interactions WHERE user_id = 'b7'")
    }
    answer = (await client.get("/api/v1/recommendations/b7", params={"limit": 30})).json()
    assert not seen & {i["item_id"] for i in answer["items"]}
    # No interaction falls in the trending window: what is hot is what was popular.
    hot = (await client.get("/api/v1/trending", params={"limit": 10})).json()["items"]
    assert len(hot) == 10 and {i["item_id"] for i in hot} <= live and hot[0]["score"] > 0
    similar = (await client.get("/api/v1/items/new-horror-1/similar")).json()
    assert len(similar["items"]) == 10 and {i["item_id"] for i in similar["items"]} <= live - {
        "new-horror-1"
    }

    # The rebuild on the harder catalog goes live: judged against popularity and the active
    # configuration on its own holdout, not against the first catalog's figures.
    second = await build_now(app)
    assert second is not None and second != first
    assert await db.fetchval("SELECT version FROM active_index") == second
    manifest = (await client.get(f"/api/v1/index/versions/{second}")).json()["manifest"]
    earlier = (await client.get(f"/api/v1/index/versions/{first}")).json()["manifest"]
    gate = manifest["gate"]
    assert gate["passed"], gate
    assert gate["figures"]["ndcg@10"] < 0.9 * earlier["metrics"]["hybrid"]["ndcg@10"]
    assert gate["figures"]["active_live_share"] == 0.0
    answer = (await client.get("/api/v1/recommendations/b7")).json()
    assert answer["index_version"] == second and answer["strategy"] == "hybrid"

    # A build on the same data with its interactions shuffled is still refused.
    ids = sorted(live)
    rows = await db.fetch("SELECT interaction_id FROM interactions WHERE user_id LIKE 'b%'")
    rng = np.random.default_rng(9)
    await db.executemany(
        "UPDATE interactions SET item_id = $2 WHERE interaction_id = $1",
        [(r["interaction_id"], str(rng.choice(ids))) for r in rows],
    )
    shuffled = await build_now(app, force=True)
    assert shuffled is not None and shuffled != second
    gate = (await client.get(f"/api/v1/index/versions/{shuffled}")).json()["manifest"]["gate"]
    metrics = (await client.get(f"/api/v1/index/versions/{shuffled}")).json()["manifest"]["metrics"]
    assert await db.fetchval("SELECT version FROM active_index") == second, (
        gate,
        {k: v.get("ndcg@10") for k, v in metrics.items() if isinstance(v, dict)},
        metrics["protocol"],
    )
    assert not gate["passed"] and "does not beat popularity" in gate["reason"]
    assert gate["figures"]["reference_config"]["version"] == second

    # Its build's status says so, with the figures, so that an operator sees why.
    build_id = await db.fetchval(
        """INSERT INTO builds (build_id, state, stage, progress, version, finished_at)
           VALUES ('b_0123456789abcdef', 'succeeded', 'rejected', 1, $1, now())
           RETURNING build_id""",
        shuffled,
    )
    status = (await client.get(f"/api/v1/index/builds/{build_id}")).json()
    assert status["state"] == "succeeded" and status["stage"] == "rejected"
    assert status["gate"]["passed"] is False
    assert "does not beat popularity" in status["gate"]["reason"]
    assert status["gate"]["figures"]["over_popular"]["low"] <= 0
