from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from common.settings import Settings
from tests.helpers import assert_error, item, running


async def count_items(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM items"))


async def test_put_stores_and_returns_the_item(client: httpx.AsyncClient) -> None:
    body = {
        "title": "Alien",
        "description": "In space no one can hear you scream.",
        "category": "Horror",
        "tags": ["space", "monster"],
        "attributes": {"year": 1979, "director": "Ridley Scott"},
        "published_at": "1979-05-25T00:00:00Z",
    }
    answer = await client.put("/api/v1/items/alien", json=body)
    assert answer.status_code == 200, answer.text
    stored = answer.json()
    assert stored["item_id"] == "alien"
    for field, value in body.items():
        if field != "published_at":
            assert stored[field] == value
    assert stored["published_at"].startswith("1979-05-25T00:00:00")

    fetched = await client.get("/api/v1/items/alien")
    assert fetched.status_code == 200
    assert fetched.json() == stored


async def test_put_replaces_the_whole_item(client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/items/x", json={"title": "Old", "category": "A", "tags": ["t"]})
    answer = await client.put("/api/v1/items/x", json={"title": "New"})
    assert answer.json()["title"] == "New"
    assert answer.json()["category"] is None
    assert answer.json()["tags"] == []


async def test_a_naive_timestamp_is_taken_as_utc(client: httpx.AsyncClient) -> None:
    answer = await client.put(
        "/api/v1/items/x", json={"title": "T", "published_at": "2024-03-01T12:00:00"}
    )
    assert answer.json()["published_at"] in ("2024-03-01T12:00:00Z", "2024-03-01T12:00:00+00:00")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": 42},
        {"title": "T", "tags": "horror"},
        {"title": "T", "tags": [1, 2]},
        {"title": "T", "attributes": ["not", "an", "object"]},
        {"title": "T", "published_at": "yesterday"},
        {"title": "T", "tag": ["misspelt"]},
    ],
)
async def test_a_bad_item_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: asyncpg.Pool, body: dict[str, object]
) -> None:
    assert_error(await client.put("/api/v1/items/x", json=body), 422, "invalid_request")
    assert await count_items(db) == 0


async def test_ids_over_128_characters_are_refused(client: httpx.AsyncClient) -> None:
    assert_error(await client.put("/api/v1/items/" + "x" * 129, json={"title": "T"}), 422)
    assert (await client.put("/api/v1/items/" + "x" * 128, json={"title": "T"})).status_code == 200
    batch = {"items": [item("y" * 129)]}
    assert_error(await client.post("/api/v1/items/batch", json=batch), 422)


async def test_an_unknown_item_is_a_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/items/nope"), 404, "not_found")
    assert_error(await client.delete("/api/v1/items/nope"), 404, "not_found")


async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    answer = await client.put(
        "/api/v1/items/x", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(answer, 400, "invalid_json")


async def test_batch_upserts_every_item(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    items = [item(f"i{n}", category="C", tags=[f"t{n}"], attributes={"n": n}) for n in range(50)]
    answer = await client.post("/api/v1/items/batch", json={"items": items})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"upserted": 50}
    assert await count_items(db) == 50
    stored = (await client.get("/api/v1/items/i7")).json()
    assert stored["tags"] == ["t7"] and stored["attributes"] == {"n": 7}


async def test_batch_updates_existing_items_and_keeps_the_last_of_repeats(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/api/v1/items/a", json={"title": "first"})
    items = [item("a", title="second"), item("b"), item("a", title="third")]
    answer = await client.post("/api/v1/items/batch", json={"items": items})
    assert answer.json() == {"upserted": 2}
    assert (await client.get("/api/v1/items/a")).json()["title"] == "third"


async def test_batch_is_all_or_nothing(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    items = [item(f"i{n}") for n in range(20)]
    items[13] = {"item_id": "i13"}  # no title
    error = assert_error(await client.post("/api/v1/items/batch", json={"items": items}), 422)
    assert "items[13].title" in error["message"]
    assert await count_items(db) == 0


async def test_batch_caps_at_ten_thousand(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    items = [item(f"i{n}") for n in range(10_001)]
    answer = await client.post("/api/v1/items/batch", json={"items": items})
    assert_error(answer, 422, "batch_too_large")
    assert await count_items(db) == 0
    answer = await client.post("/api/v1/items/batch", json={"items": items[:10_000]})
    assert answer.json() == {"upserted": 10_000}


async def test_an_empty_batch_is_refused(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/v1/items/batch", json={"items": []}), 422)


async def test_delete_hides_the_item_and_put_brings_it_back(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await client.put("/api/v1/items/x", json={"title": "T"})
    answer = await client.delete("/api/v1/items/x")
    assert answer.status_code == 204 and answer.content == b""
    assert_error(await client.get("/api/v1/items/x"), 404)
    assert_error(await client.delete("/api/v1/items/x"), 404)
    assert (await client.get("/api/v1/items")).json()["items"] == []
    # The row stays so that interaction history is kept.
    assert await count_items(db) == 1
    assert (await client.put("/api/v1/items/x", json={"title": "Back"})).status_code == 200
    assert (await client.get("/api/v1/items/x")).json()["title"] == "Back"


async def test_listing_pages_through_every_live_item_once(client: httpx.AsyncClient) -> None:
    items = [item(f"i{n:03d}", category="even" if n % 2 == 0 else "odd") for n in range(25)]
    await client.post("/api/v1/items/batch", json={"items": items})
    await client.delete("/api/v1/items/i004")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/items", params=params)).json()
        seen += [i["item_id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"i{n:03d}" for n in range(25) if n != 4]
    assert pages == 4


async def test_listing_filters_by_category(client: httpx.AsyncClient) -> None:
    items = [item(f"i{n}", category="even" if n % 2 == 0 else "odd") for n in range(10)]
    await client.post("/api/v1/items/batch", json={"items": items})
    page = (await client.get("/api/v1/items", params={"category": "odd", "limit": 3})).json()
    assert [i["item_id"] for i in page["items"]] == ["i1", "i3", "i5"]
    rest = (
        await client.get("/api/v1/items", params={"category": "odd", "cursor": page["next_cursor"]})
    ).json()
    assert [i["item_id"] for i in rest["items"]] == ["i7", "i9"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"cursor": "garbage!"}])
async def test_bad_listing_parameters_are_refused(
    client: httpx.AsyncClient, params: dict[str, object]
) -> None:
    assert_error(await client.get("/api/v1/items", params=params), 422)


async def test_items_are_deleted_in_bulk_as_one_by_one(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    items = [item(f"bulk{n}") for n in range(6)]
    assert (await client.post("/api/v1/items/batch", json={"items": items})).status_code == 200
    assert (await client.delete("/api/v1/items/bulk5")).status_code == 204
    answer = await client.post(
        "/api/v1/items/delete",
        json={"item_ids": ["bulk0", "bulk1", "bulk1", "bulk5", "never"]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"deleted": 2, "unknown": ["bulk5", "never"]}
    assert {"bulk0", "bulk1"} <= app.state.application.serving.deleted
    for gone in ("bulk0", "bulk1"):
        assert_error(await client.get(f"/api/v1/items/{gone}"), 404)
    assert (await client.get("/api/v1/items/bulk2")).status_code == 200
    assert_error(await client.post("/api/v1/items/delete", json={"item_ids": []}), 422)


async def test_another_process_hears_of_a_bulk_deletion(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    items = [item(f"far{n}") for n in range(3)]
    assert (await client.post("/api/v1/items/batch", json={"items": items})).status_code == 200
    async with running(settings) as (peer, _):
        serving = peer.state.application.serving
        answer = await client.post("/api/v1/items/delete", json={"item_ids": ["far0", "far2"]})
        assert answer.json()["deleted"] == 2
        for _ in range(200):  # the announcement arrives within milliseconds; 10 s at most
            if {"far0", "far2"} <= serving.deleted:
                break
            await asyncio.sleep(0.05)
        assert {"far0", "far2"} <= serving.deleted and "far1" not in serving.deleted
