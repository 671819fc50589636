"""Building, publishing, retaining and loading versions against real PostgreSQL and S3."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from common.errors import ObjectStoreUnavailable
from common.settings import BlobSettings, Settings
from devstack.servers import ensure_database
from embeddings.encoder import make_encoder
from indexing import publish
from indexing.artifacts import ARTIFACTS, CorruptArtifact, IndexVersion, sha256_of
from storage import builds
from storage.blob.s3 import S3Store
from tests.conftest import TABLES
from tests.helpers import build_now, genre_catalog, running
from workers.context import BuildContext
from workers.pipeline import build_version


@pytest.fixture
async def catalog(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog()})
    rows = [
        {"user_id": f"u{n}", "item_id": f"horror-{k}", "type": "like"}
        for n in range(3)
        for k in range(3)
    ]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})


async def test_a_build_publishes_a_complete_verified_version(
    catalog: None, app: FastAPI, db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    version = await build_now(app)
    assert version is not None
    store = S3Store(settings.s3)
    manifest = publish.fetch_manifest(store, version)
    assert manifest["version"] == version
    assert manifest["items"] == 32 and manifest["users"] == 3 and manifest["interactions"] == 9
    assert manifest["encoder"] == {"name": "hashing-64", "dimension": 64}
    assert manifest["item_index"]["type"] == "flat"
    assert len(manifest["fingerprint"]) == 16
    keys = set(store.list(publish.prefix(version)))
    assert keys == {publish.prefix(version) + n for n in (*ARTIFACTS, "manifest.json")}

    folder, fetched = publish.download(store, version, tmp_path)
    for name in ARTIFACTS:
        assert sha256_of(folder / name) == manifest["artifacts"][name]["sha256"]
    loaded = IndexVersion.load(folder, fetched)
    assert len(loaded.item_ids) == 32 and loaded.item_vectors.shape == (32, 64)
    # What serving reads besides the arrays comes back as the build made it: the centred
    # space's mean, how the item-item models counted evidence, the typical user's figures.
    served = app.state.application.serving.current
    assert loaded.embedding_mean is not None and served.embedding_mean is not None
    np.testing.assert_allclose(loaded.embedding_mean, served.embedding_mean)
    assert loaded.collaborative is not None and served.collaborative is not None
    assert loaded.collaborative.binary == served.collaborative.binary
    assert loaded.typical == manifest["typical"] and set(loaded.typical) == {"spread", "support"}
    assert loaded.content_informative == manifest["content_informative"]
    # The indexes' vectors and the arrays stay in their files, mapped: processes share one
    # copy.
    mapped = await asyncio.to_thread(Path("/proc/self/maps").read_text)
    for name in ("items.faiss", "users.faiss", "factors.faiss", "arrays.npz"):
        assert str((folder / name).resolve()) in mapped, name

    recorded = await db.fetchrow("SELECT * FROM index_versions WHERE version = $1", version)
    assert recorded["state"] == "ready" and recorded["items"] == 32
    assert await db.fetchval("SELECT version FROM active_index") == version


async def test_a_corrupt_artifact_is_refused(
    catalog: None, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    version = await build_now(app)
    assert version is not None
    store = S3Store(settings.s3)
    store.put_bytes(publish.prefix(version) + "ids.json", b'{"items": []}')
    with pytest.raises(CorruptArtifact, match=r"ids\.json"):
        publish.download(store, version, tmp_path)


async def test_an_unchanged_catalog_is_not_rebuilt_unless_forced(
    catalog: None, app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await build_now(app)
    assert await build_now(app) == first
    forced = await build_now(app, force=True)
    assert forced is not None and first is not None and forced > first
    await client.post(
        "/api/v1/interactions", json={"user_id": "u9", "item_id": "space-1", "type": "view"}
    )
    changed = await build_now(app)
    assert changed is not None and changed > forced


async def test_unchanged_items_are_not_embedded_again(
    catalog: None, app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await build_now(app)
    before = {
        r["item_id"]: r["embedded_at"]
        for r in await db.fetch("SELECT item_id, embedded_at FROM item_embeddings")
    }
    await client.put("/api/v1/items/horror-0", json={"title": "A brand new title"})
    await build_now(app)
    after = {
        r["item_id"]: r["embedded_at"]
        for r in await db.fetch("SELECT item_id, embedded_at FROM item_embeddings")
    }
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {"horror-0"}


async def test_only_the_newest_versions_and_the_active_one_are_kept(
    catalog: None, app: FastAPI, settings: Settings, db: asyncpg.Pool
) -> None:
    keep = settings.index.keep_versions
    first = await build_now(app)
    assert first is not None
    await db.execute("UPDATE active_index SET version = $1", first)
    versions = [await build_now(app, force=True, activate=False) for _ in range(keep + 1)]
    ready = [
        r["version"]
        for r in await db.fetch(
            "SELECT version FROM index_versions WHERE state = 'ready' ORDER BY version"
        )
    ]
    assert ready == sorted([first, *versions[-keep:]])
    store = S3Store(settings.s3)
    dropped = versions[0]
    assert dropped is not None
    assert store.list(publish.prefix(dropped)) == []
    assert store.list(publish.prefix(first))


async def test_a_build_that_cannot_upload_leaves_the_active_version(
    catalog: None, app: FastAPI, settings: Settings, db: asyncpg.Pool
) -> None:
    active = await build_now(app)
    dead = S3Store(settings.s3.model_copy(update={"endpoint": "127.0.0.1:1"}))
    with pytest.raises(ObjectStoreUnavailable):
        await build_version(
            app.state.application.pool,
            dead,
            make_encoder("hashing-64"),
            settings,
            BuildContext(),
            force=True,
        )
    assert await db.fetchval("SELECT version FROM active_index") == active
    assert await db.fetchval("SELECT count(*) FROM index_versions") == 1
    # The failed attempt's folder is gone; the active version's local copy stays.
    left = sorted(p.name for p in settings.index.data_dir.iterdir() if p.name[:1].isdigit())
    assert left == [f"{active:010d}"]


@pytest.mark.parametrize(("trending_seconds", "left"), [(30.0, 70.0), (150.0, 0.0)])
async def test_users_are_ranked_in_what_the_trending_lists_leave_of_the_budget(
    catalog: None,
    app: FastAPI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    trending_seconds: float,
    left: float,
) -> None:
    from workers import pipeline

    clock = {"offset": 0.0}
    real = pipeline.time
    fake = SimpleNamespace(
        monotonic=lambda: real.monotonic() + clock["offset"], time_ns=real.time_ns
    )
    monkeypatch.setattr(pipeline, "time", fake)
    all_lists = pipeline.trending.all_lists

    def slow_lists(*args: Any) -> Any:
        clock["offset"] += trending_seconds  # as long as 10M interactions in the window take
        return all_lists(*args)

    given: list[float] = []
    rank_users = pipeline.precompute.rank_users

    def recorded(*args: Any, seconds: float, **kwargs: Any) -> Any:
        given.append(seconds)
        return rank_users(*args, seconds=seconds, **kwargs)

    monkeypatch.setattr(pipeline.trending, "all_lists", slow_lists)
    monkeypatch.setattr(pipeline.precompute, "rank_users", recorded)
    budget = settings.index.model_copy(update={"precompute_seconds": 100.0})
    res = app.state.application
    version = (
        await build_version(
            res.pool,
            res.store,
            make_encoder(settings.embedding.model),
            settings.model_copy(update={"index": budget}),
            BuildContext(),
            force=True,
            activate=False,
        )
    ).version
    assert version is not None
    assert len(given) == 1 and left - 1.0 <= given[0] <= left


async def test_a_finished_build_keeps_its_outcome(db: asyncpg.Pool) -> None:
    # A time limit that strikes after a build succeeded (its lists ranked on) changes nothing.
    build, _ = await builds.request_build(db, "first", False, 600.0, 60.0)
    assert await builds.start_build(db, build["build_id"]) is not None
    await builds.finish_build(db, build["build_id"], version=None, error=None, stage="done")
    late = "the build ran past its time limit"
    await builds.finish_build(db, build["build_id"], version=None, error=late, stage="done")
    found = await builds.get_build(db, build["build_id"])
    assert found["state"] == "succeeded" and found["error"] is None


async def test_a_version_built_into_a_folder_is_served_from_it(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    # BLOB_URL=file://...: the API starts on the folder, a build uploads its version there,
    # and another API process, with no copy of its own, downloads it from there and serves.
    database = urlsplit(settings.database.url)
    database = database._replace(path=database.path + "_blobs")
    folder = tmp_path / "blobs"
    in_folder = settings.model_copy(
        update={
            "database": settings.database.model_copy(update={"url": urlunsplit(database)}),
            "blob": BlobSettings(url=f"file://{folder}"),
        }
    )
    await ensure_database(in_folder.database.url)

    def own(data_dir: str) -> Settings:
        index = settings.index.model_copy(update={"data_dir": tmp_path / data_dir})
        return in_folder.model_copy(update={"index": index})

    async with running(own("builder")) as (builder, http):
        res = builder.state.application
        await res.pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await http.post("/api/v1/items/batch", json={"items": genre_catalog()})
        rows = [{"user_id": "fan", "item_id": f"horror-{k}", "type": "like"} for k in range(3)]
        await http.post("/api/v1/interactions/batch", json={"interactions": rows})
        await res.drain()
        version = await build_now(builder)
        assert version is not None
    assert (folder / publish.prefix(version) / "manifest.json").is_file()

    assert not (tmp_path / "server").exists()
    async with running(own("server")) as (_, http):
        ready = await http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["object_store"] == "ok"
        answer = (await http.get("/api/v1/recommendations/fan")).json()
        assert answer["index_version"] == version and answer["items"]
        assert (tmp_path / "server" / f"{version:010d}" / "manifest.json").is_file()
