"""Batch exports: queued by the API, written by the worker's use case (run here in-process),
downloaded as JSON lines that match the live endpoints, resumed after a failure."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from common.errors import ObjectStoreUnavailable
from service.usecases import exports
from tests.helpers import assert_error
from tests.service.test_auth import bearer, make_key
from tests.service.test_experiments import fans

USERS = 24


@pytest.fixture
def queued(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Export ids sent to the task queue (no worker runs here: the tests run its body)."""
    sent: list[str] = []

    def send_task(name: str, args: list[Any] | None = None, **_: Any) -> None:
        if name == "recs.export_lists":
            sent.append(args[0] if args else "")

    monkeypatch.setattr(app.state.application.celery, "send_task", send_task)
    return sent


async def export(client: httpx.AsyncClient, **body: Any) -> str:
    answer = await client.post("/api/v1/exports", json=body)
    assert answer.status_code == 202, answer.text
    export_id: str = answer.json()["export_id"]
    return export_id


async def lines(client: httpx.AsyncClient, export_id: str) -> list[dict[str, Any]]:
    async with client.stream("GET", f"/api/v1/exports/{export_id}/download") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-ndjson"
        body = b"".join([chunk async for chunk in answer.aiter_bytes()])
    return [orjson.loads(line) for line in body.splitlines()]


def pairs(items: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(i["item_id"], i["score"]) for i in items]


async def test_an_export_of_every_user_holds_the_lists_the_live_endpoint_answers(
    client: httpx.AsyncClient, app: FastAPI, queued: list[str]
) -> None:
    await fans(client, app, USERS)
    export_id = await export(client, kind="recommendations", limit=5)
    assert queued == [export_id]
    state = (await client.get(f"/api/v1/exports/{export_id}")).json()
    assert state["state"] == "queued" and state["rows"] == 0
    assert_error(await client.get(f"/api/v1/exports/{export_id}/download"), 409, "not_ready")

    await exports.write(app.state.application, export_id)

    state = (await client.get(f"/api/v1/exports/{export_id}")).json()
    assert state["state"] == "succeeded", state
    assert state["rows"] == state["total"] == USERS and state["progress"] == 1
    found = await lines(client, export_id)
    assert sorted(line["id"] for line in found) == sorted(f"fan-{n}" for n in range(USERS))
    for line in found:
        live = await client.get(f"/api/v1/recommendations/{line['id']}", params={"limit": 5})
        assert pairs(line["items"]) == pairs(live.json()["items"]), line["id"]


async def test_similar_items_for_listed_ids_follow_the_filter_and_name_unknown_ids(
    client: httpx.AsyncClient, app: FastAPI, queued: list[str]
) -> None:
    await fans(client, app, 8)
    ids = ["horror-1", "space-2", "no-such-item"]
    rules = {"filter": 'category = "horror"', "limit": 3}
    export_id = await export(client, kind="similar_items", ids=ids, **rules)
    await exports.write(app.state.application, export_id)
    found = await lines(client, export_id)
    assert [line["id"] for line in found] == ids
    for line in found[:2]:
        live = await client.get(f"/api/v1/items/{line['id']}/similar", params=rules)
        assert pairs(line["items"]) == pairs(live.json()["items"])
        assert all(i["item_id"].startswith("horror-") for i in line["items"])
    assert found[2]["items"] == [] and "does not exist" in found[2]["error"]


async def test_a_stopped_export_goes_on_from_its_last_part(
    client: httpx.AsyncClient,
    app: FastAPI,
    queued: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fans(client, app, USERS)
    monkeypatch.setattr(exports, "PART_IDS", 5)
    res = app.state.application
    store, written = res.store, []

    class Failing:
        """The object store, going away at the third part."""

        def put_bytes(self, key: str, data: bytes) -> None:
            if len(written) == 2:
                raise ObjectStoreUnavailable("S3 went away")
            written.append(key)
            store.put_bytes(key, data)

    ranked: list[str] = []
    asked = exports.user_list

    async def counted(app: Any, request: Any) -> Any:
        ranked.append(request.user_id)
        return await asked(app, request)

    monkeypatch.setattr(exports, "user_list", counted)
    export_id = await export(client, kind="recommendations")
    monkeypatch.setattr(res, "store", Failing())
    with pytest.raises(ObjectStoreUnavailable):
        await exports.write(res, export_id)
    state = (await client.get(f"/api/v1/exports/{export_id}")).json()
    assert (state["state"], state["rows"]) == ("running", 10)
    assert 0 < state["progress"] < 1
    assert_error(await client.get(f"/api/v1/exports/{export_id}/download"), 409, "not_ready")

    monkeypatch.setattr(res, "store", store)
    first_attempt = list(ranked)
    await exports.write(res, export_id)
    # The two parts stored were not made again; the part that failed was.
    assert ranked[len(first_attempt) :] == sorted(f"fan-{n}" for n in range(USERS))[10:]
    state = (await client.get(f"/api/v1/exports/{export_id}")).json()
    assert (state["state"], state["rows"], state["attempts"]) == ("succeeded", USERS, 2)
    found = [line["id"] for line in await lines(client, export_id)]
    assert found == sorted(f"fan-{n}" for n in range(USERS))


async def test_an_export_whose_worker_fell_silent_is_queued_again(
    client: httpx.AsyncClient, app: FastAPI, queued: list[str]
) -> None:
    export_id = await export(client, kind="similar_items", ids=["a"])
    pool = app.state.application.pool
    await pool.execute(
        """UPDATE exports SET state = 'running', heartbeat_at = now() - interval '1 hour'
           WHERE export_id = $1""",
        export_id,
    )
    assert (await client.get(f"/api/v1/exports/{export_id}")).json()["state"] == "queued"
    assert queued == [export_id, export_id]


async def test_bad_exports_are_refused_before_anything_is_queued(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, queued: list[str]
) -> None:
    bad_filter = await client.post(
        "/api/v1/exports", json={"kind": "recommendations", "filter": "year >"}
    )
    assert_error(bad_filter, 400, "invalid_filter")
    unknown = await client.post(
        "/api/v1/exports", json={"kind": "recommendations", "scenario": "nowhere"}
    )
    assert_error(unknown, 404, "unknown_scenario")
    assert_error(await client.post("/api/v1/exports", json={"kind": "users"}), 422)
    assert_error(
        await client.post("/api/v1/exports", json={"kind": "similar_items", "ids": []}), 422
    )
    writer = await make_key(client, "write")
    refused = await anonymous.post(
        "/api/v1/exports", json={"kind": "recommendations"}, headers=bearer(writer)
    )
    assert_error(refused, 403, "forbidden")
    assert_error(await client.get("/api/v1/exports/x_unknown"), 404, "not_found")
    assert queued == []


async def test_an_export_answer_links_to_its_state_and_its_download(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    operations = {
        o["operationId"]: path
        for path, methods in schema["paths"].items()
        for o in methods.values()
    }
    links = schema["paths"]["/api/v1/exports"]["post"]["responses"]["202"]["links"]
    assert {operations[link["operationId"]] for link in links.values()} == {
        "/api/v1/exports/{export_id}",
        "/api/v1/exports/{export_id}/download",
    }
    assert all(
        link["parameters"] == {"export_id": "$response.body#/export_id"} for link in links.values()
    )
