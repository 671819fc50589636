"""Versions and builds through the API; the builds here are made in this process."""

from __future__ import annotations

import socket
import time

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from indexing import publish
from storage.blob.s3 import S3Store
from tests.helpers import assert_error, build_now, genre_catalog


@pytest.fixture
async def catalog(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(4)})
    rows = [{"user_id": "fan", "item_id": f"horror-{k}", "type": "like"} for k in range(3)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})


async def test_versions_list_and_detail(
    catalog: None, app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await build_now(app)
    second = await build_now(app, force=True)
    listed = (await client.get("/api/v1/index/versions")).json()
    assert listed["active"] == second
    assert [v["version"] for v in listed["versions"]] == [second, first]
    assert [v["active"] for v in listed["versions"]] == [True, False]
    assert listed["versions"][0]["items"] == 16 and listed["versions"][0]["users"] == 1
    detail = (await client.get(f"/api/v1/index/versions/{first}")).json()
    assert detail["manifest"]["version"] == first
    assert set(detail["manifest"]["artifacts"]) == {
        "items.faiss",
        "users.faiss",
        "factors.faiss",
        "arrays.npz",
        "ids.json",
    }
    assert_error(await client.get("/api/v1/index/versions/999999"), 404)


async def test_each_build_evaluates_itself_on_the_newest_interactions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(6)})
    # Six fans, each liking five films of one genre a day apart: the newest like of each is
    # held out, and the other fans of the genre make it findable.
    rows = [
        {
            "user_id": f"fan-{u}",
            "item_id": f"{genre}-{(u + k) % 6}",
            "type": "like",
            "timestamp": f"2026-01-{k + 1:02d}T12:00:00Z",
        }
        for u, genre in enumerate(["horror", "comedy", "space"] * 2)
        for k in range(5)
    ]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    version = await build_now(app)
    listed = (await client.get("/api/v1/index/versions")).json()
    metrics = listed["versions"][0]["metrics"]
    assert listed["versions"][0]["version"] == version
    assert metrics["hybrid"]["users"] == 6
    for source in ("hybrid", "content", "collaborative", "cooccurrence", "recent", "trending"):
        assert set(metrics[source]) == {
            "users",
            "recall@10",
            "ndcg@10",
            "mrr",
            "coverage",
            "users_hit",
        }
    # Ten of 24 films are candidates for each fan's one held-out film: a ranking that uses
    # the history finds it in the top ten every time.
    assert metrics["hybrid"]["recall@10"] == 1.0


async def test_readiness_names_the_served_version(
    catalog: None, app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    assert (await anonymous.get("/health/ready")).json()["index_version"] is None
    version = await build_now(app)
    assert (await anonymous.get("/health/ready")).json()["index_version"] == version


async def test_activating_an_older_version_rolls_back(
    catalog: None, app: FastAPI, client: httpx.AsyncClient
) -> None:
    old = await build_now(app)
    await client.put(
        "/api/v1/items/newcomer", json={"title": "haunted ghost", "category": "Horror"}
    )
    new = await build_now(app)
    similar = (await client.get("/api/v1/items/horror-1/similar", params={"limit": 20})).json()
    assert similar["index_version"] == new
    assert "newcomer" in {i["item_id"] for i in similar["items"]}

    answer = await client.post(f"/api/v1/index/versions/{old}/activate")
    assert answer.status_code == 200 and answer.json() == {"active": old}
    similar = (await client.get("/api/v1/items/horror-1/similar", params={"limit": 20})).json()
    assert similar["index_version"] == old
    assert "newcomer" not in {i["item_id"] for i in similar["items"]}
    recs = (await client.get("/api/v1/recommendations/fan")).json()
    assert recs["index_version"] == old
    assert (await client.get("/api/v1/index/versions")).json()["active"] == old
    assert_error(await client.post("/api/v1/index/versions/999999/activate"), 404)


async def test_a_build_request_is_queued_once(client: httpx.AsyncClient) -> None:
    first = await client.post("/api/v1/index/builds", json={"reason": "nightly"})
    assert first.status_code == 202
    build = first.json()
    assert build["state"] == "queued" and build["progress"] == 0 and build["reason"] == "nightly"
    again = await client.post("/api/v1/index/builds", json={})
    assert again.json()["build_id"] == build["build_id"]
    fetched = (await client.get(f"/api/v1/index/builds/{build['build_id']}")).json()
    assert fetched["state"] == "queued"
    assert_error(await client.get("/api/v1/index/builds/b_nope"), 404)
    assert_error(await client.post("/api/v1/index/builds", json={"force": "sometimes"}), 422)


async def test_a_build_whose_worker_fell_silent_is_marked_failed(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    build = (await client.post("/api/v1/index/builds")).json()
    await db.execute(
        """UPDATE builds SET state = 'running', started_at = now() - interval '1 hour',
                             heartbeat_at = now() - interval '1 hour' WHERE build_id = $1""",
        build["build_id"],
    )
    fetched = (await client.get(f"/api/v1/index/builds/{build['build_id']}")).json()
    assert fetched["state"] == "failed"
    assert "stopped reporting" in fetched["error"]
    fresh = (await client.post("/api/v1/index/builds")).json()
    assert fresh["build_id"] != build["build_id"]


async def test_index_routes_need_admin(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    token = (await client.post("/api/v1/keys", json={"name": "w", "role": "write"})).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert_error(await anonymous.post("/api/v1/index/builds", headers=headers), 403)
    assert_error(await anonymous.post("/api/v1/index/versions/1/activate", headers=headers), 403)


async def test_an_activation_whose_files_are_gone_changes_nothing(
    catalog: None, app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    old = await build_now(app)
    new = await build_now(app, force=True)
    assert old is not None and new is not None
    res = app.state.application
    publish.remove(res.store, old)
    error = assert_error(await client.post(f"/api/v1/index/versions/{old}/activate"), 422)
    assert f"version {old} cannot be served" in error["message"]
    assert await db.fetchval("SELECT version FROM active_index") == new
    assert res.serving.current.version == new
    assert (await client.get("/api/v1/recommendations/fan")).json()["index_version"] == new


async def test_an_activation_while_the_store_is_down_is_a_503_and_changes_nothing(
    catalog: None,
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = await build_now(app)
    new = await build_now(app, force=True)
    res = app.state.application
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    dead = S3Store(res.settings.s3.model_copy(update={"endpoint": f"127.0.0.1:{closed}"}))
    monkeypatch.setattr(res.serving, "store", dead)
    started = time.monotonic()
    answer = await client.post(f"/api/v1/index/versions/{old}/activate")
    assert_error(answer, 503, "object_store_unavailable")
    assert time.monotonic() - started < 5
    assert await db.fetchval("SELECT version FROM active_index") == new
    assert res.serving.current.version == new
    monkeypatch.undo()
    assert (await client.post(f"/api/v1/index/versions/{old}/activate")).status_code == 200
    assert res.serving.current.version == old


async def test_builds_are_listed_newest_first_a_page_at_a_time_ties_and_all(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Seven finished builds, four of them created in the same instant.
    await db.execute(
        """INSERT INTO builds (build_id, state, stage, progress, created_at)
           SELECT 'b_' || n, 'failed', 'failed', 1,
                  '2026-01-01T00:00:00Z'::timestamptz + make_interval(secs => least(n, 3))
           FROM generate_series(0, 6) AS n"""
    )
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/index/builds", params=params)).json()
        seen += [b["build_id"] for b in page["builds"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["b_6", "b_5", "b_4", "b_3", "b_2", "b_1", "b_0"]
    refused = await client.get("/api/v1/index/builds", params={"cursor": "not-ours"})
    assert_error(refused, 422, "invalid_request")
