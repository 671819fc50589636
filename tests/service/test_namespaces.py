"""Deployments that share a Redis server do not steer each other.

Redis pub/sub ignores the database number, so two deployments on one server (a test run
beside a developer's `make run`, staging beside production) would hear each other's events
on a shared channel. Here deployment A (the tests' own servers) and deployment B (another
PostgreSQL database, Redis database and bucket) run side by side, each with a process that
learns of changes only through its events (its poll is slowed to a minute).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from fastapi import FastAPI

from common.settings import Settings
from devstack.servers import ensure_database
from storage import builds, events
from tests.conftest import TABLES
from tests.helpers import build_now, genre_catalog, running

FOLLOW_SECONDS = 1.0
_markers = itertools.count()


def other_deployment(settings: Settings) -> Settings:
    database = urlsplit(settings.database.url)
    redis = urlsplit(settings.redis.url)
    return settings.model_copy(
        update={
            "database": settings.database.model_copy(
                update={"url": urlunsplit(database._replace(path="/recs_test_other"))}
            ),
            "redis": settings.redis.model_copy(
                update={"url": urlunsplit(redis._replace(path="/14", query=""))}
            ),
            "s3": settings.s3.model_copy(update={"bucket": "recs-test-other"}),
        }
    )


def own_process(settings: Settings, data_dir: Path) -> Settings:
    """Another process: its own folder of versions, and a poll slowed to a minute so that it
    learns of changes through events alone."""
    index = settings.index.model_copy(update={"poll_seconds": 60.0, "data_dir": data_dir})
    return settings.model_copy(update={"index": index})


async def within(seconds: float, condition: object, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        await asyncio.sleep(0.01)


async def settled(app: FastAPI) -> None:
    """Every message published to `app` before now has been handled: its own channel
    delivers in order, so once a marker sent now is handled, everything before it is."""
    res = app.state.application
    marker = f"marker-{next(_markers)}"
    await events.publish(res.redis, res.settings.event_namespace, "item_deleted", item_id=marker)
    await within(FOLLOW_SECONDS, lambda: marker in res.serving.deleted, "the marker")


def served(app: FastAPI) -> int | None:
    current = app.state.application.serving.current
    return current.version if current is not None else None


async def activate_as_a_worker_does(app: FastAPI, version: int) -> None:
    res = app.state.application
    await builds.activate(res.pool, version)
    await events.publish(
        res.redis, res.settings.event_namespace, "index_activated", version=version
    )


async def fill(app: FastAPI, http: httpx.AsyncClient) -> tuple[int, int]:
    """The same catalog and fan in a deployment; two versions, the second active."""
    await http.post("/api/v1/items/batch", json={"items": genre_catalog(4)})
    rows = [{"user_id": "fan", "item_id": f"horror-{k}", "type": "like"} for k in range(3)]
    await http.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.refresher.flush()
    first = await build_now(app)
    second = await build_now(app, force=True)
    assert first is not None and second is not None
    return first, second


async def test_two_deployments_on_one_redis_server_never_steer_each_other(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    b_settings = own_process(other_deployment(settings), tmp_path / "b")
    assert b_settings.event_namespace != settings.event_namespace
    await ensure_database(b_settings.database.url)
    a_first, a_second = await fill(app, client)

    async with (
        running(b_settings) as (b, b_http),
        running(own_process(settings, tmp_path / "a")) as (a_peer, _),
    ):
        await b.state.application.pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await b.state.application.redis.flushdb()
        b.state.application.serving.current = None
        b_first, b_second = await fill(b, b_http)
        assert served(a_peer) == a_second and served(b) == b_second

        # An activation in A: A's peer follows within a second, B keeps its version.
        await activate_as_a_worker_does(app, a_first)
        await within(FOLLOW_SECONDS, lambda: served(a_peer) == a_first, "A follows A")
        await settled(b)
        assert served(b) == b_second
        # And the other way round.
        await activate_as_a_worker_does(b, b_first)
        await within(FOLLOW_SECONDS, lambda: served(b) == b_first, "B follows B")
        await settled(a_peer)
        assert served(a_peer) == a_first

        # The reproduction: a bare message on the old shared channel, a message on B's own
        # channel naming another deployment, and a replayed hint of a version B does not
        # serve. None of them moves B.
        redis = b.state.application.redis
        stray = {"type": "index_activated", "version": b_second}
        await redis.publish("recs:events", orjson.dumps(stray))
        b_channel = events.channel(b_settings.event_namespace)
        foreign = stray | {"namespace": settings.event_namespace}
        await redis.publish(b_channel, orjson.dumps(foreign))
        await redis.publish(
            b_channel, orjson.dumps(stray | {"namespace": b_settings.event_namespace})
        )
        await settled(b)
        assert served(b) == b_first

        # A delete in A leaves B's answers alone.
        assert (await client.delete("/api/v1/items/horror-3")).status_code == 204
        await within(
            FOLLOW_SECONDS, lambda: "horror-3" in a_peer.state.application.serving.deleted, "A"
        )
        await settled(b)
        assert "horror-3" not in b.state.application.serving.deleted
        similar = (await b_http.get("/api/v1/items/horror-2/similar?limit=20")).json()
        assert "horror-3" in [i["item_id"] for i in similar["items"]]

        # An interaction in A does not drop B's cached answers for a user of the same id
        # (one who acted in B since its build, asking for seen items too, so that B ranks
        # them live and keeps the list).
        mine = {"user_id": "fan", "item_id": "space-2", "type": "like"}
        assert (await b_http.post("/api/v1/interactions", json=mine)).status_code == 202
        await settled(b)  # B's own profile messages are handled
        asked = "/api/v1/recommendations/fan?exclude_seen=false"
        await b_http.get(asked)
        assert (await b_http.get(asked)).json()["cached"] is True
        one = {"user_id": "fan", "item_id": "space-1", "type": "like"}
        assert (await client.post("/api/v1/interactions", json=one)).status_code == 202
        await settled(b)
        assert (await b_http.get(asked)).json()["cached"] is True
