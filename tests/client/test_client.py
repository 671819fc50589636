"""The client library against the service (in-process, through its ASGI app): every route of
the contract, errors as exceptions with the contract's code, cursors as iterators, and the
retries on 429 and 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from recs_client import (
    AsyncClient,
    Backoff,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from recs_client import client as client_module
from recs_client.importer import Loader
from service.usecases import exports
from tests.helpers import build_now, genre_catalog


@pytest.fixture
async def recs(client: httpx.AsyncClient) -> AsyncIterator[AsyncClient]:
    """The library over the test's admin HTTP client."""
    yield AsyncClient(http=client, backoff=Backoff(retries=0))


async def collect(found: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in found]


async def test_every_route_answers_through_the_library(
    recs: AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = genre_catalog(6)
    assert (await recs.put_items(catalog))["upserted"] == len(catalog)
    one = await recs.put_item("extra", {"title": "Extra", "category": "space", "tags": ["x"]})
    assert one["item_id"] == "extra" and (await recs.get_item("extra"))["tags"] == ["x"]
    assert [i["item_id"] for i in await collect(recs.items(page_size=5))] == sorted(
        [i["item_id"] for i in catalog] + ["extra"]
    )
    await recs.put_user("u 1", {"country": "NL"})
    rows = [{"user_id": "u 1", "item_id": f"horror-{k}", "type": "like"} for k in range(4)]
    rows += [
        {"user_id": f"fan-{n}", "item_id": f"horror-{n % 6}", "type": "like"} for n in range(8)
    ]
    assert (await recs.record_interactions(rows))["accepted"] == len(rows)
    await app.state.application.drain()
    version = await build_now(app)

    answer = await recs.recommend("u 1", limit=3, explain=True)
    assert answer["index_version"] == version and len(answer["items"]) == 3
    clicked = answer["items"][0]["item_id"]
    done = await recs.record_interaction(
        "u 1", clicked, "click", recommendation_id=answer["recommendation_id"]
    )
    assert done == {"accepted": 1, "duplicates": 0}
    history = await collect(recs.interactions("u 1", page_size=2))
    assert len(history) == 5 and history[0]["item_id"] == clicked
    assert (await recs.get_user("u 1"))["interaction_count"] == 5
    assert (await recs.similar_items("horror-1", limit=3))["items"]
    assert "users" in await recs.similar_users("fan-1")
    assert "items" in await recs.trending(variant="hot", limit=3)
    assert "items" in await recs.search("space", limit=2)
    session = await recs.recommend_session(["horror-1", {"item_id": "nope", "type": "view"}])
    assert session["strategy"] == "session" and session["unknown_items"] == ["nope"]
    assert (await recs.explain("u 1", clicked))["item_id"] == clicked

    versions = await recs.versions()
    assert versions["active"] == version
    assert (await recs.get_version(version))["version"] == version
    assert (await recs.activate(version))["active"] == version
    build = await recs.request_build(reason="from the library")
    assert build["state"] in ("queued", "running", "failed")

    await recs.put_scenario("home", {"filter": 'category = "horror"'})
    assert [s["scenario_id"] for s in (await recs.scenarios())["scenarios"]] == ["home"]
    assert (await recs.get_scenario("home"))["scenario_id"] == "home"
    await recs.delete_scenario("home")

    variants = [{"name": "control", "weight": 1, "params": {}}, {"name": "b", "weight": 1}]
    await recs.create_experiment("e1", variants)
    assert [e["experiment_id"] for e in (await recs.experiments())["experiments"]] == ["e1"]
    assert "variants" in await recs.experiment_results("e1")
    assert (await recs.stop_experiment("e1"))["active"] is False

    key = await recs.create_key("reader", "read")
    assert key["token"] and key["key_id"] in [k["key_id"] for k in (await recs.keys())["keys"]]
    await recs.revoke_key(key["key_id"])

    monkeypatch.setattr(app.state.application.celery, "send_task", lambda *a, **k: None)
    queued = await recs.create_export("similar_items", ids=["horror-1"], limit=2)
    await exports.write(app.state.application, queued["export_id"])
    assert (await recs.get_export(queued["export_id"]))["state"] == "succeeded"
    lines = await collect(recs.download_export(queued["export_id"]))
    assert [line["id"] for line in lines] == ["horror-1"] and len(lines[0]["items"]) == 2

    assert (await recs.delete_items(["extra", "ghost"])) == {"deleted": 1, "unknown": ["ghost"]}
    await recs.delete_item("horror-5")
    await recs.erase_user("u 1")
    assert (await recs.dead_letters())["letters"] == []
    assert (await recs.replay_dead())["replayed"] == 0
    assert (await recs.health())["status"] == "ok"
    assert (await recs.ready())["status"] == "ready"


async def test_errors_carry_the_contracts_code(
    recs: AsyncClient, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    with pytest.raises(NotFound) as missing:
        await recs.get_item("ghost")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(BadRequest) as bad:
        await recs.recommend("u", filter="year >")
    assert bad.value.code == "invalid_filter" and bad.value.details[0]["field"] == "filter"
    with pytest.raises(Conflict) as early:
        queued = (await client.post("/api/v1/exports", json={"kind": "recommendations"})).json()
        await recs.download_export(queued["export_id"]).__anext__()
    assert early.value.code == "not_ready"
    key = (await client.post("/api/v1/keys", json={"name": "r", "role": "read"})).json()
    reader = AsyncClient(http=anonymous, api_key=key["token"])
    with pytest.raises(Forbidden) as refused:
        await reader.put_user("u")
    assert refused.value.code == "forbidden"


def script(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[str]]:
    """A transport answering each request with the next of `answers`; the methods asked."""
    asked: list[str] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.method)
        found = queue.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    return httpx.MockTransport(handle), asked


def refused(status: int, code: str, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"code": code, "message": "not now"}}
    return httpx.Response(status, json=body, headers=headers)


def test_429_and_503_are_retried_waiting_at_least_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    transport, asked = script(
        refused(429, "rate_limited", "2"),
        refused(503, "unavailable"),
        httpx.Response(200, json={"item_id": "a"}),
    )
    recs = Client(
        "http://recs.test", "k", http=httpx.Client(transport=transport, base_url="http://recs.test")
    )
    assert recs.get_item("a") == {"item_id": "a"}
    assert len(asked) == 3 and waits[0] >= 2.0 and len(waits) == 2


def test_what_is_still_refused_after_the_retries_raises_with_its_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module.time, "sleep", lambda _: None)
    transport, asked = script(*[refused(503, "unavailable")] * 3)
    http = httpx.Client(transport=transport, base_url="http://recs.test")
    with pytest.raises(Unavailable) as down:
        Client(http=http, backoff=Backoff(retries=2)).get_item("a")
    assert down.value.code == "unavailable" and len(asked) == 3
    transport, _ = script(refused(429, "rate_limited", "7"))
    http = httpx.Client(transport=transport, base_url="http://recs.test")
    with pytest.raises(TooManyRequests) as limited:
        Client(http=http, backoff=Backoff(retries=0)).get_item("a")
    assert limited.value.retry_after == 7.0


def test_a_post_that_may_have_arrived_is_not_sent_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module.time, "sleep", lambda _: None)
    transport, asked = script(httpx.ReadTimeout("no answer"), httpx.Response(202, json={}))
    http = httpx.Client(transport=transport, base_url="http://recs.test")
    with pytest.raises(httpx.ReadTimeout):
        Client(http=http).record_interaction("u", "i", "view")
    assert asked == ["POST"]
    transport, asked = script(httpx.ConnectError("refused"), httpx.Response(200, json={}))
    http = httpx.Client(transport=transport, base_url="http://recs.test")
    assert Client(http=http).get_user("u") == {}
    assert asked == ["GET", "GET"]


async def test_the_async_client_retries_too(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)
    answers = [refused(503, "unavailable", "1"), httpx.Response(200, json={"user_id": "u"})]
    queue = list(answers)
    transport = httpx.MockTransport(lambda request: queue.pop(0))
    http = httpx.AsyncClient(transport=transport, base_url="http://recs.test")
    assert await AsyncClient(http=http).get_user("u") == {"user_id": "u"}
    assert waits and waits[0] >= 1.0


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(retries=10, base=1.0, cap=4.0)
    assert all(0 <= backoff.delay(n, None) <= min(4.0, 2**n) for n in range(10))
    assert backoff.delay(0, 9.0) == 9.0


async def test_an_import_stops_at_a_refusal_for_good_and_keeps_what_it_set_aside(
    tmp_path: Path,
) -> None:
    source = tmp_path / "events.jsonl"
    rows = [b"{not json\n"] + [
        orjson.dumps({"user_id": f"u{n}", "item_id": "i", "type": "view"}) + b"\n"
        for n in range(30_000)
    ]
    source.write_bytes(b"".join(rows))
    asked: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "no"}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url="http://recs.test")
    loader = Loader(
        AsyncClient(http=http, backoff=Backoff(retries=0)), "interactions", batch=1_000, parallel=2
    )
    with pytest.raises(Unauthorized):
        await loader.load(source)
    assert len(asked) <= 4, "it went on sending after the key was refused"
    rejected = (tmp_path / "events.jsonl.rejected.jsonl").read_bytes().splitlines()
    assert [orjson.loads(r)["row"] for r in rejected] == [1]
