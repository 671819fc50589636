"""The whole path through a real Celery worker: ingest, build, query, roll back, and builds
that fail (object store unreachable, worker killed) without disturbing what is served."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from common.models import ItemIn
from common.settings import Settings
from devstack import demo
from devstack.servers import celery_worker
from storage import builds, catalog
from tests.helpers import build_now, until
from workers.factory import make_celery

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 240


@contextmanager
def worker(settings: Settings, tmp_path: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker process on the test servers, ready when this yields."""
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    environment = os.environ | {
        "INDEX_HEARTBEAT_TIMEOUT": "3",
        "INDEX_DATA_DIR": str(tmp_path / "worker-index"),
        **env,
    }
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        celery_worker(
            "--loglevel=INFO", f"--hostname={name}", "--without-mingle", "--without-gossip"
        ),
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    control = make_celery(settings).control
    hostname = name.replace("%h", os.uname().nodename)
    deadline = time.monotonic() + 90
    while not control.ping(destination=[hostname], timeout=0.5):
        assert process.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, "the worker did not answer a ping in 90s"
    try:
        yield process
    finally:
        log.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def wait_for_build(
    client: httpx.AsyncClient, build_id: str, until: tuple[str, ...] = ("succeeded", "failed")
) -> list[dict[str, Any]]:
    """Poll a build until its state is one of `until`; return every answer seen."""
    seen = []
    deadline = time.monotonic() + BUILD_SECONDS
    while time.monotonic() < deadline:
        build = (await client.get(f"/api/v1/index/builds/{build_id}")).json()
        seen.append(build)
        if build["state"] in until:
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"build still {seen[-1]} after {BUILD_SECONDS}s")


@pytest.fixture
async def demo_catalog(
    client: httpx.AsyncClient, app: FastAPI
) -> AsyncIterator[list[dict[str, Any]]]:
    items = demo.catalog(items_per_genre=12)
    await client.post("/api/v1/items/batch", json={"items": items})
    rows = demo.interactions(items, users=60)
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.drain()
    yield items


async def test_ingest_build_query_rebuild_and_roll_back(
    demo_catalog: list[dict[str, Any]],
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    tmp_path: Path,
) -> None:
    genre = {item["item_id"]: item["category"] for item in demo_catalog}
    # The build's precompute has no time for users' lists: the build ranks them in parts
    # before it activates the version, and the API reads the parts in before serving it.
    later = {"INDEX_PRECOMPUTE_SECONDS": "0", "INDEX_FILL_PART_USERS": "25"}
    with worker(settings, tmp_path, EMBEDDING_MODEL="all-MiniLM-L6-v2", **later):
        queued = await client.post("/api/v1/index/builds", json={"reason": "first"})
        assert queued.status_code == 202
        seen = await wait_for_build(client, queued.json()["build_id"])
        final = seen[-1]
        assert final["state"] == "succeeded", final
        progress = [b["progress"] for b in seen]
        assert progress == sorted(progress) and progress[-1] == 1
        first = final["version"]
        serving = app.state.application.serving
        await serving.sync()
        # Every user with a history has a list, from a part.
        active = int(np.count_nonzero(np.diff(serving.current.history_indptr)))
        await until(lambda: serving.current.lists.users >= active, seconds=60)
        parts = await builds.lists_parts(app.state.application.pool, first)
        assert len(parts) == -(-active // 25) and len(serving.current.parts_read) == len(parts)

        # A film's neighbours share its genre.
        for anchor in ("horror-000", "comedy-003", "scifi-005"):
            similar = (
                await client.get(f"/api/v1/items/{anchor}/similar", params={"limit": 5})
            ).json()
            assert similar["index_version"] == first
            same = sum(genre[i["item_id"]] == genre[anchor] for i in similar["items"])
            assert same >= 4, (anchor, similar)

        # Five horror likes turn a new user's list towards horror at once.
        for n in range(5):
            await client.post(
                "/api/v1/interactions",
                json={"user_id": "horror-newbie", "item_id": f"horror-{n:03d}", "type": "like"},
            )
        recs = (
            await client.get("/api/v1/recommendations/horror-newbie", params={"limit": 5})
        ).json()
        assert recs["strategy"] == "hybrid"
        assert [genre[i["item_id"]] for i in recs["items"]] == ["Horror"] * 5

        again = (await client.post("/api/v1/index/builds", json={"force": True})).json()
        second = (await wait_for_build(client, again["build_id"]))[-1]
        assert second["state"] == "succeeded" and second["version"] > first
        await app.state.application.serving.sync()
        assert (await client.get("/api/v1/recommendations/u")).json()["index_version"] == second[
            "version"
        ]

    rolled = await client.post(f"/api/v1/index/versions/{first}/activate")
    assert rolled.status_code == 200
    for path in ("/api/v1/recommendations/horror-newbie", "/api/v1/items/horror-000/similar"):
        assert (await client.get(path)).json()["index_version"] == first
    listed = (await client.get("/api/v1/index/versions")).json()
    assert listed["active"] == first
    assert {first, second["version"]} <= {v["version"] for v in listed["versions"]}


async def test_a_build_whose_worker_is_killed_fails_and_the_active_version_serves(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    items = demo.catalog(items_per_genre=250)  # enough for embedding to take several seconds
    await client.post("/api/v1/items/batch", json={"items": items[:40]})
    active = await build_now(app)
    # Written past the API, which would also queue their embedding ahead of the build: this
    # way the build itself has them all to embed.
    await catalog.upsert_items(app.state.application.pool, [ItemIn(**i) for i in items[40:]])
    with worker(settings, tmp_path, EMBEDDING_MODEL="all-MiniLM-L6-v2") as process:
        build = (await client.post("/api/v1/index/builds")).json()
        deadline = time.monotonic() + BUILD_SECONDS
        while True:
            state = (await client.get(f"/api/v1/index/builds/{build['build_id']}")).json()
            assert state["state"] in ("queued", "running"), state
            if state["stage"] == "embedding" and state["progress"] > 0:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    final = (await wait_for_build(client, build["build_id"]))[-1]
    assert final["state"] == "failed" and final["version"] is None
    assert "stopped reporting" in final["error"]
    assert (await client.get("/api/v1/index/versions")).json()["active"] == active
    assert (await client.get("/api/v1/recommendations/u")).json()["index_version"] == active


async def test_a_build_that_cannot_reach_the_object_store_fails_cleanly(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    await client.post("/api/v1/items/batch", json={"items": demo.catalog(items_per_genre=3)})
    active = await build_now(app)
    with worker(
        settings,
        tmp_path,
        S3_ENDPOINT="127.0.0.1:1",
        INDEX_BUILD_RETRIES="1",
        INDEX_BUILD_RETRY_SECONDS="0.2",
    ):
        build = (await client.post("/api/v1/index/builds", json={"force": True})).json()
        final = (await wait_for_build(client, build["build_id"]))[-1]
    assert final["state"] == "failed"
    assert "S3" in final["error"] and "2 attempts" in final["error"]
    assert (await client.get("/api/v1/index/versions")).json()["active"] == active
    assert (await client.get("/api/v1/recommendations/u")).json()["index_version"] == active


async def test_redeliveries_count_toward_the_retry_limit(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    await client.post("/api/v1/items/batch", json={"items": demo.catalog(items_per_genre=3)})
    active = await build_now(app)
    build = (await client.post("/api/v1/index/builds", json={"force": True})).json()
    # Two deliveries that claimed the build and were lost without a word, as when a build
    # keeps killing its worker: each redelivery comes back with Celery's retry count at 0.
    for _ in range(2):
        assert await builds.start_build(app.state.application.pool, build["build_id"])
    with worker(settings, tmp_path, INDEX_BUILD_RETRIES="1"):
        final = (await wait_for_build(client, build["build_id"]))[-1]
    assert final["state"] == "failed" and final["version"] is None, final
    assert final["attempts"] == 3 and "gave up after 2 attempts" in final["error"]
    assert (await client.get("/api/v1/index/versions")).json()["active"] == active
