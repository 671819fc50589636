"""gRPC through a real channel to an API process of the tests' own (on a free port): each RPC
lists what the HTTP request lists, every status code of the contract with its `error-code`,
deadlines, the client stream, the health service following readiness, reflection, and a
fuzz pass over the request messages that never meets INTERNAL."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from common.errors import DatabaseUnavailable
from common.settings import Settings
from recs.v1 import recs_pb2 as pb
from recs.v1 import recs_pb2_grpc
from service.usecases import user_list as user_list_module
from tests.conftest import ADMIN_KEY, ROOT
from tests.helpers import free_port, running
from tests.service.test_auth import make_key
from tests.service.test_experiments import fans

ADMIN = (("authorization", f"Bearer {ADMIN_KEY}"),)


class Door:
    """A peer API process with gRPC on, its HTTP client and a stub over a real channel."""

    def __init__(self, app: Any, http: httpx.AsyncClient, channel: grpc.aio.Channel) -> None:
        self.app, self.http, self.channel = app, http, channel
        self.stub = recs_pb2_grpc.RecommendationsStub(channel)


@pytest.fixture
async def door(settings: Settings, db: object) -> AsyncIterator[Door]:
    port = free_port()
    on = settings.model_copy(update={"api": settings.api.model_copy(update={"grpc_port": port})})
    async with (
        running(on) as (peer, http),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Door(peer, http, channel)


async def code_of(call: Any) -> tuple[grpc.StatusCode, str | None, str]:
    """The status, trailing `error-code` and message a call ended with."""
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    trailing = dict(failed.value.trailing_metadata() or ())
    return failed.value.code(), trailing.get("error-code"), failed.value.details() or ""


def pairs(items: Any) -> list[tuple[str, float]]:
    return [
        (i["item_id"], round(i["score"], 6))
        if isinstance(i, dict)
        else (i.item_id, round(i.score, 6))
        for i in items
    ]


async def test_each_rpc_lists_what_http_lists(
    client: httpx.AsyncClient, app: FastAPI, door: Door
) -> None:
    await fans(client, app, 16)
    await door.app.state.application.serving.sync()
    stub, http = door.stub, door.http
    for user in ("fan-1", "fan-2", "nobody"):
        over_http = (await http.get(f"/api/v1/recommendations/{user}", params={"limit": 5})).json()
        over_grpc = await stub.Recommend(pb.RecommendRequest(user_id=user, limit=5), metadata=ADMIN)
        assert pairs(over_grpc.items) == pairs(over_http["items"])
        assert over_grpc.strategy == over_http["strategy"]
        assert over_grpc.index_version == over_http["index_version"]
        assert over_grpc.recommendation_id
    asked = {"filter": 'category = "horror"', "limit": 4}
    over_http = (await http.get("/api/v1/items/horror-1/similar", params=asked)).json()
    over_grpc = await stub.SimilarItems(
        pb.SimilarItemsRequest(item_id="horror-1", filter=asked["filter"], limit=4), metadata=ADMIN
    )
    assert pairs(over_grpc.items) == pairs(over_http["items"])
    over_http = (await http.get("/api/v1/trending", params={"limit": 5})).json()
    over_grpc = await stub.Trending(pb.TrendingRequest(limit=5), metadata=ADMIN)
    assert pairs(over_grpc.items) == pairs(over_http["items"])
    over_http = (await http.post("/api/v1/search", json={"text": "space", "limit": 3})).json()
    over_grpc = await stub.Search(pb.SearchRequest(text="space", limit=3), metadata=ADMIN)
    assert pairs(over_grpc.items) == pairs(over_http["items"])
    session = {"items": ["horror-1", {"item_id": "horror-2", "type": "like"}, "ghost"], "limit": 5}
    over_http = (await http.post("/api/v1/recommendations", json=session)).json()
    over_grpc = await stub.RecommendSession(
        pb.RecommendSessionRequest(
            items=[
                pb.SessionItem(item_id="horror-1"),
                pb.SessionItem(item_id="horror-2", type="like"),
                pb.SessionItem(item_id="ghost"),
            ],
            limit=5,
        ),
        metadata=ADMIN,
    )
    assert pairs(over_grpc.items) == pairs(over_http["items"])
    assert list(over_grpc.unknown_items) == over_http["unknown_items"] == ["ghost"]
    # Fields: a Struct of attributes, and the item's own.
    found = await stub.Recommend(
        pb.RecommendRequest(user_id="fan-1", limit=2, fields=["title", "attributes"]),
        metadata=ADMIN,
    )
    assert all(i.title for i in found.items) and all(i.HasField("attributes") for i in found.items)


async def test_every_status_code_of_the_contract(
    client: httpx.AsyncClient, app: FastAPI, door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fans(client, app, 8)
    stub = door.stub
    ask = pb.RecommendRequest(user_id="fan-1")
    assert (await code_of(stub.Recommend(ask)))[:2] == (
        grpc.StatusCode.UNAUTHENTICATED,
        "unauthorized",
    )
    reader = await make_key(door.http, "read")
    as_reader = (("authorization", f"Bearer {reader}"),)

    async def one() -> AsyncIterator[Any]:
        yield pb.Interaction(user_id="u", item_id="horror-1", type="view")

    assert (await code_of(stub.RecordInteractions(one(), metadata=as_reader)))[:2] == (
        grpc.StatusCode.PERMISSION_DENIED,
        "forbidden",
    )
    status, code, message = await code_of(
        stub.SimilarItems(pb.SimilarItemsRequest(item_id="ghost"), metadata=ADMIN)
    )
    assert (status, code) == (grpc.StatusCode.NOT_FOUND, "not_found") and "ghost" in message
    status, code, message = await code_of(
        stub.Recommend(pb.RecommendRequest(user_id="u", filter="year >"), metadata=ADMIN)
    )
    assert (status, code) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_filter")
    http = await door.http.get("/api/v1/recommendations/u", params={"filter": "year >"})
    assert message == http.json()["error"]["message"]
    status, code, message = await code_of(
        stub.Recommend(pb.RecommendRequest(user_id="u", limit=500), metadata=ADMIN)
    )
    assert (status, code) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")
    assert "limit" in message

    async def down(*_: Any, **__: Any) -> Any:
        raise DatabaseUnavailable("PostgreSQL is unavailable")

    monkeypatch.setattr(user_list_module, "user_list", down)
    monkeypatch.setattr("service.grpc.server.user_list", down)
    assert (await code_of(stub.Recommend(ask, metadata=ADMIN)))[:2] == (
        grpc.StatusCode.UNAVAILABLE,
        "database_unavailable",
    )
    monkeypatch.undo()
    # Rate limits: the same keys and limits as HTTP.
    limiter = door.app.state.application.limiter
    rate = limiter.settings.model_copy(update={"enabled": True, "read_per_minute": 2})
    monkeypatch.setattr(limiter, "settings", rate)
    await stub.Recommend(ask, metadata=as_reader)
    await stub.Recommend(ask, metadata=as_reader)
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await stub.Recommend(ask, metadata=as_reader)
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(limited.value.trailing_metadata() or ())
    assert trailing["error-code"] == "rate_limited" and int(trailing["retry-after"]) >= 1


async def test_a_call_past_its_deadline_stops_its_work(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = asyncio.Event()

    async def slow(*_: Any, **__: Any) -> Any:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    monkeypatch.setattr("service.grpc.server.user_list", slow)
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await door.stub.Recommend(pb.RecommendRequest(user_id="u"), metadata=ADMIN, timeout=0.3)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(stopped.wait(), 5)  # the handler was cancelled, not left running


async def test_interactions_stream_in_batches_and_count_once(
    client: httpx.AsyncClient, door: Door
) -> None:
    await client.post("/api/v1/items/batch", json={"items": [{"item_id": "i", "title": "I"}]})

    async def stream() -> AsyncIterator[Any]:
        for n in range(2_500):
            yield pb.Interaction(user_id=f"u{n}", item_id="i", type="view", event_id=f"e{n}")

    first = await door.stub.RecordInteractions(stream(), metadata=ADMIN)
    again = await door.stub.RecordInteractions(stream(), metadata=ADMIN)
    assert (first.accepted, first.duplicates) == (2_500, 0)
    assert (again.accepted, again.duplicates) == (0, 2_500)


async def test_health_follows_readiness_and_reflection_lists_the_service(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker = health_pb2_grpc.HealthStub(door.channel)
    asked = health_pb2.HealthCheckRequest(service="recs.v1.Recommendations")
    assert (await checker.Check(asked)).status == health_pb2.HealthCheckResponse.SERVING

    async def down(_: Any) -> None:
        raise DatabaseUnavailable("PostgreSQL is unavailable")

    # The database stops answering readiness's ping: the health service follows.
    monkeypatch.setattr("service.usecases.health.db.ping", down)
    await door.app.state.grpc.follow_readiness()
    assert (await checker.Check(asked)).status == health_pb2.HealthCheckResponse.NOT_SERVING

    reflect = reflection_pb2_grpc.ServerReflectionStub(door.channel)

    async def ask() -> AsyncIterator[Any]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for answer in reflect.ServerReflectionInfo(ask()):
        names = {s.name for s in answer.list_services_response.service}
        assert {"recs.v1.Recommendations", "grpc.health.v1.Health"} <= names
        break


async def test_fuzzed_requests_never_meet_an_internal_error(door: Door) -> None:
    rng = random.Random(20261206)
    texts = ["", "a", "x" * 200, "é/?#", "\x00", "year > 1990", "not (", "a" * 5000, " "]
    numbers = [0, 1, -1, 10, 200, 201, 10_001, 2**31 - 1, -(2**31)]
    bad: list[str] = []
    for _ in range(150):
        kind = rng.choice(["Recommend", "SimilarItems", "Trending", "Search", "RecommendSession"])
        text, number = rng.choice(texts), rng.choice(numbers)
        if kind == "Recommend":
            call = door.stub.Recommend(
                pb.RecommendRequest(
                    user_id=text,
                    limit=number,
                    offset=rng.choice(numbers),
                    filter=rng.choice(texts),
                    fields=[rng.choice(texts)],
                    experiment_id=rng.choice(texts),
                ),
                metadata=ADMIN,
            )
        elif kind == "SimilarItems":
            call = door.stub.SimilarItems(
                pb.SimilarItemsRequest(item_id=text, limit=number, category=rng.choice(texts)),
                metadata=ADMIN,
            )
        elif kind == "Trending":
            call = door.stub.Trending(
                pb.TrendingRequest(variant=text, limit=number, window_hours=rng.choice(numbers)),
                metadata=ADMIN,
            )
        elif kind == "Search":
            call = door.stub.Search(pb.SearchRequest(text=text, limit=number), metadata=ADMIN)
        else:
            items = [pb.SessionItem(item_id=rng.choice(texts), type=rng.choice(texts))] * (
                number % 300 if number > 0 else 1
            )
            call = door.stub.RecommendSession(
                pb.RecommendSessionRequest(items=items, limit=number), metadata=ADMIN
            )
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                bad.append(f"{kind}: {exc.details()}")
    assert bad == []


async def test_shutdown_lets_a_call_in_flight_finish(
    settings: Settings, db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()
    real = user_list_module.user_list

    async def slow(app: Any, request: Any) -> Any:
        started.set()
        await asyncio.sleep(0.5)
        return await real(app, request)

    monkeypatch.setattr("service.grpc.server.user_list", slow)
    port = free_port()
    on = settings.model_copy(update={"api": settings.api.model_copy(update={"grpc_port": port})})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = recs_pb2_grpc.RecommendationsStub(channel)
        async with running(on):
            call = asyncio.ensure_future(
                stub.Recommend(pb.RecommendRequest(user_id="u"), metadata=ADMIN)
            )
            await asyncio.wait_for(started.wait(), 5)
        # The process stopped only after answering the call it had begun.
        assert (await call).strategy == "popular"


def test_the_checked_in_stubs_match_the_proto(tmp_path: Path) -> None:
    """The stubs in recs/v1 are checked in (no build step for a user to run); they must be
    what grpcio-tools makes of the proto now."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "proto/recs/v1/recs.proto",
        ],
        cwd=ROOT,
        check=True,
    )
    for name in ("recs_pb2.py", "recs_pb2.pyi", "recs_pb2_grpc.py"):
        made = (tmp_path / "recs" / "v1" / name).read_text()
        assert (ROOT / "recs" / "v1" / name).read_text() == made, f"regenerate recs/v1/{name}"
