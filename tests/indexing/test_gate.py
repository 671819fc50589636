"""The quality gate: its rule, and a build made worse on purpose against real PostgreSQL and S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import numpy as np
from fastapi import FastAPI

from indexing.gate import judge
from tests.helpers import build_now, genre_catalog


def figures(hybrid: float, popular: float, users: int = 100) -> dict[str, dict[str, float]]:
    return {
        "hybrid": {"users": users, "ndcg@10": hybrid},
        "popular": {"users": users, "ndcg@10": popular},
    }


def test_a_build_must_beat_popularity_and_stay_near_the_active_version() -> None:
    assert judge(figures(0.30, 0.10), None, 0.1)["passed"]
    assert judge(figures(0.30, 0.10), figures(0.32, 0.1), 0.1)["passed"]  # within 10%
    worse = judge(figures(0.25, 0.10), figures(0.32, 0.1), 0.1)
    assert not worse["passed"] and "active version's 0.3200" in worse["reasons"][0]
    flat = judge(figures(0.10, 0.10), None, 0.1)
    assert not flat["passed"] and "not above popularity" in flat["reasons"][0]
    assert judge(figures(0.0, 0.5, users=5), None, 0.1)["passed"]  # too few users to judge
    # Figures near 0 with a handful of hits between them cannot tell the lists apart.
    sparse = figures(0.001, 0.001, users=2_000)
    sparse["hybrid"]["users_hit"], sparse["popular"]["users_hit"] = 3, 4
    verdict = judge(sparse, None, 0.1)
    assert verdict["passed"] and "7 held-out hits" in verdict["notes"][0]
    # Nor can they tell a build from an active version's figure of the same noise.
    sparse["hybrid"]["ndcg@10"] = 0.0
    verdict = judge(sparse, figures(0.002, 0.001), 0.1)
    assert verdict["passed"] and "too few hits" in verdict["notes"][1]
    sparse["hybrid"]["ndcg@10"] = 0.001
    sparse["hybrid"]["users_hit"] = 30
    assert not judge(sparse, None, 0.1)["passed"]


async def send_genre_fans(client: httpx.AsyncClient) -> None:
    """80 users, each viewing six films of one genre, a minute apart."""
    catalog = genre_catalog()
    await client.post("/api/v1/items/batch", json={"items": catalog})
    genres = sorted({i["category"] for i in catalog})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(5)
    rows = []
    for user in range(80):
        genre = genres[user % len(genres)]
        films = [i["item_id"] for i in catalog if i["category"] == genre]
        for n, film in enumerate(rng.choice(films, 6, replace=False)):
            at = start + timedelta(hours=user, minutes=n)
            rows.append(
                {
                    "user_id": f"u{user}",
                    "item_id": film,
                    "type": "view",
                    "timestamp": at.isoformat(),
                }
            )
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202, answer.text


async def test_a_build_on_shuffled_interactions_is_rejected_and_the_active_one_serves(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await send_genre_fans(client)
    good = await build_now(app)
    assert good is not None and await db.fetchval("SELECT version FROM active_index") == good

    # Worse on purpose: every interaction gets a random film.
    ids = [r["item_id"] for r in await db.fetch("SELECT item_id FROM items ORDER BY item_id")]
    rows = await db.fetch("SELECT interaction_id FROM interactions ORDER BY interaction_id")
    rng = np.random.default_rng(9)
    await db.executemany(
        "UPDATE interactions SET item_id = $2 WHERE interaction_id = $1",
        [(r["interaction_id"], str(rng.choice(ids))) for r in rows],
    )
    bad = await build_now(app, force=True)
    assert bad is not None and bad != good

    assert await db.fetchval("SELECT version FROM active_index") == good
    listed = (await client.get("/api/v1/index/versions")).json()
    assert listed["active"] == good
    states = {v["version"]: v["state"] for v in listed["versions"]}
    assert states == {good: "ready", bad: "rejected"}
    detail = (await client.get(f"/api/v1/index/versions/{bad}")).json()
    gate = detail["manifest"]["gate"]
    assert gate["passed"] is False and gate["reasons"]
    assert gate["ndcg@10"] < gate["active_ndcg@10"]
    answer = (await client.get("/api/v1/recommendations/u1")).json()
    assert answer["index_version"] == good

    # An operator may still choose it.
    assert (await client.post(f"/api/v1/index/versions/{bad}/activate")).status_code == 200
    assert await db.fetchval("SELECT version FROM active_index") == bad
    assert await db.fetchval("SELECT state FROM index_versions WHERE version = $1", bad) == "ready"
