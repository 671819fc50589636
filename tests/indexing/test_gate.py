"""The quality gate: its rule, and a build made worse on purpose against real PostgreSQL and S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import numpy as np
from fastapi import FastAPI

from indexing.gate import judge
from tests.helpers import build_now, genre_catalog


def per_user(mean: float, users: int = 400, spread: float = 0.2, seed: int = 0) -> np.ndarray:
    """Per-user NDCG figures around `mean` (each user's own noise)."""
    noise = np.random.default_rng(seed).normal(0.0, spread, users)
    figures: np.ndarray = np.clip(mean + noise, 0.0, 1.0)
    return figures


def test_a_build_must_beat_popularity_beyond_noise() -> None:
    popular = per_user(0.10, seed=1)
    clear = judge({"hybrid": popular + 0.05, "popular": popular}, 0.1, 1.0)
    assert clear["passed"], clear
    assert clear["figures"]["over_popular"]["low"] > 0
    # Popularity's own figures, dealt to other users: no gain at all, only noise.
    shuffled = np.random.default_rng(2).permutation(popular)
    flat = judge({"hybrid": shuffled, "popular": popular}, 0.1, 1.0)
    assert not flat["passed"]
    assert "does not beat popularity's" in flat["reason"] and flat["reasons"]
    # Too few users to tell anything: it passes on trust.
    few = judge({"hybrid": popular[:10] * 0, "popular": popular[:10]}, 0.1, 1.0)
    assert few["passed"] and "too few" in few["reason"]


def test_a_build_must_not_fall_below_the_active_configuration_beyond_noise() -> None:
    popular, reference = per_user(0.05, seed=1), per_user(0.30, seed=3)
    same = {"popular": popular, "reference": reference, "hybrid": reference + 0.001}
    assert judge(same, 0.1, 1.0)["passed"]
    # 5% below the reference is within the 10% tolerance, 30% below is not.
    within = judge(same | {"hybrid": reference * 0.95}, 0.1, 1.0)
    assert within["passed"], within
    worse = judge(same | {"hybrid": reference * 0.7}, 0.1, 1.0)
    assert not worse["passed"] and "active configuration" in worse["reason"]
    assert worse["figures"]["over_reference"]["high"] < -0.1 * worse["figures"]["reference_ndcg@10"]


def test_no_verdict_keeps_a_version_that_cannot_serve_the_catalog() -> None:
    popular = per_user(0.10, seed=1)
    flat = {"hybrid": np.random.default_rng(2).permutation(popular), "popular": popular}
    # No version is active, or the active one's items are mostly gone: the build goes live
    # and says what it would have been refused for.
    for share in (None, 0.2):
        verdict = judge(flat, 0.1, share)
        assert verdict["passed"] and "goes live although" in verdict["reason"], share
        assert verdict["notes"] and not verdict["reasons"]
    assert not judge(flat, 0.1, 0.9)["passed"]


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
    assert gate["passed"] is False and "does not beat popularity" in gate["reason"]
    # Judged on its own holdout against popularity and the active configuration there.
    figures = gate["figures"]
    assert figures["over_popular"]["low"] <= 0
    assert figures["reference_config"]["version"] == good
    answer = (await client.get("/api/v1/recommendations/u1")).json()
    assert answer["index_version"] == good

    # An operator may still choose it.
    assert (await client.post(f"/api/v1/index/versions/{bad}/activate")).status_code == 200
    assert await db.fetchval("SELECT version FROM active_index") == bad
    assert await db.fetchval("SELECT state FROM index_versions WHERE version = $1", bad) == "ready"
