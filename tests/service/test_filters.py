"""Filters and `fields` through HTTP, on every list endpoint that takes them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.settings import Settings
from service.usecases.session_list import SessionItem, session_list
from storage import catalog
from tests.helpers import assert_error, listed, running


async def test_every_list_endpoint_keeps_to_the_filter(
    client: httpx.AsyncClient, app: FastAPI, shop: dict[str, dict[str, Any]]
) -> None:
    in_stock = "attributes.in_stock = true"
    passing = {i for i, item in shop.items() if item["attributes"]["in_stock"]}
    answers = [
        await listed(client, "/api/v1/recommendations/horror-fan-0", filter=in_stock, limit=12),
        await listed(client, "/api/v1/items/horror-1/similar", filter=in_stock, limit=12),
        await listed(client, "/api/v1/trending", filter=in_stock, limit=12),
    ]
    searched = await client.post(
        "/api/v1/search", json={"text": "haunted ghost", "limit": 12, "filter": in_stock}
    )
    assert searched.status_code == 200, searched.text
    answers.append([i["item_id"] for i in searched.json()["items"]])
    session = await session_list(
        app.state.application, [SessionItem("horror-1")], limit=12, filter_text=in_stock
    )
    answers.append([i for i, _ in session.pairs])
    for answer in answers:
        # Sixteen items pass: every list is full, and holds only those.
        assert len(answer) == 12 and set(answer) <= passing, answer


async def test_a_filter_few_items_pass_still_fills_the_list_from_within(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    """Three western items, which a horror fan's list would never reach: retrieval keeps to
    them, rather than cutting a finished list."""
    rare = 'category = "Western" and attributes.year < 2010 and attributes.price >= 270'
    wanted = {
        i
        for i, item in shop.items()
        if item["category"] == "Western"
        and item["attributes"]["year"] < 2010
        and item["attributes"]["price"] >= 270
    }
    assert len(wanted) == 3
    fan = await listed(client, "/api/v1/recommendations/horror-fan-0", filter=rare, limit=3)
    assert set(fan) == wanted
    similar = await listed(client, "/api/v1/items/horror-1/similar", filter=rare, limit=3)
    assert set(similar) == wanted
    # Asked for more than pass: the ones that pass, no others.
    more = await listed(client, "/api/v1/recommendations/horror-fan-1", filter=rare, limit=10)
    assert set(more) == wanted


async def test_filter_and_category_combine_by_and(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    found = await listed(
        client,
        "/api/v1/recommendations/space-fan-0",
        category="Comedy",
        filter='tags contains "party" or title contains "joke"',
        limit=20,
    )
    assert found
    for item_id in found:
        item = shop[item_id]
        assert item["category"] == "Comedy"
        assert "party" in item["tags"] or "joke" in item["title"]


async def test_times_and_now(client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]) -> None:
    found = await listed(
        client, "/api/v1/trending", filter='published_at >= "2026-01-20"', limit=50
    )
    assert found and all(shop[i]["published_at"] >= "2026-01-20" for i in found)
    assert await listed(client, "/api/v1/trending", filter="published_at > now", limit=5) == []
    recent = await listed(client, "/api/v1/trending", filter="published_at > now - 36500d")
    assert len(recent) == 10


async def test_an_item_changed_since_the_build_is_judged_by_its_fields_now(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    in_stock = "attributes.in_stock = true"
    path = "/api/v1/items/horror-1/similar"
    before = await listed(client, path, filter=in_stock, limit=16)
    gone = before[0]
    sold_out = {**shop[gone], "attributes": {**shop[gone]["attributes"], "in_stock": False}}
    sold_out.pop("item_id")
    assert (await client.put(f"/api/v1/items/{gone}", json=sold_out)).status_code == 200
    after = await listed(client, path, filter=in_stock, limit=16)
    assert gone not in after
    # An item back in stock, and one newer than the version: both pass at once.
    back = next(i for i, item in shop.items() if not item["attributes"]["in_stock"])
    restocked = {**shop[back], "attributes": {**shop[back]["attributes"], "in_stock": True}}
    restocked.pop("item_id")
    assert (await client.put(f"/api/v1/items/{back}", json=restocked)).status_code == 200
    fresh = {"title": "The new ghost", "category": "Horror", "attributes": {"in_stock": True}}
    assert (await client.put("/api/v1/items/horror-new", json=fresh)).status_code == 200
    only = '(item_id = "horror-new" or item_id = "' + back + '") and attributes.in_stock = true'
    found = await listed(client, "/api/v1/trending", filter=only, limit=5)
    assert set(found) == {back, "horror-new"}


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("category = ", 11),
        ('colour = "red"', 0),
        ('category = "Horror" and', 23),
        ('title = "a\\q"', 10),
        ("x" * 2_001, 2_000),
    ],
)
async def test_a_malformed_filter_is_a_400_naming_the_position(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]], text: str, position: int
) -> None:
    for answer in (
        await client.get("/api/v1/recommendations/horror-fan-0", params={"filter": text}),
        await client.get("/api/v1/items/horror-1/similar", params={"filter": text}),
        await client.get("/api/v1/trending", params={"filter": text}),
        await client.post("/api/v1/search", json={"text": "ghost", "filter": text}),
    ):
        error = assert_error(answer, 400, "invalid_filter")
        assert error["details"][0]["position"] == position


async def test_fields_are_added_in_one_lookup(
    client: httpx.AsyncClient,
    settings: Settings,
    shop: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups = []
    read = catalog.items_by_id

    async def counted(pool: Any, item_ids: Any) -> Any:
        lookups.append(len(item_ids))
        return await read(pool, item_ids)

    monkeypatch.setattr(catalog, "items_by_id", counted)
    # A process started after the catalog was written reads the fields of an answer's items
    # in one query, and keeps them.
    async with running(settings) as (_, peer):
        asked = {"fields": "title,attributes", "limit": 5}
        answer = await peer.get("/api/v1/recommendations/horror-fan-0", params=asked)
        again = await peer.get("/api/v1/recommendations/horror-fan-0", params=asked)
    assert again.json()["items"] == answer.json()["items"]
    items = answer.json()["items"]
    assert len(items) == 5 and lookups == [5]
    for item in items:
        stored = shop[item["item_id"]]
        assert item["title"] == stored["title"] and item["attributes"] == stored["attributes"]
        assert "tags" not in item and "description" not in item
    again = await client.get(
        "/api/v1/items/horror-1/similar", params={"fields": "category,published_at"}
    )
    assert {i["category"] for i in again.json()["items"]} <= {
        "Horror",
        "Comedy",
        "Space",
        "Western",
    }
    plain = await client.get("/api/v1/trending")
    assert all(set(i) == {"item_id", "score"} for i in plain.json()["items"])
    searched = await client.post("/api/v1/search", json={"text": "ghost", "fields": ["tags"]})
    assert all("tags" in i for i in searched.json()["items"])
    refused = await client.get("/api/v1/trending", params={"fields": "title,price"})
    assert "fields" in assert_error(refused, 422)["message"]


async def test_another_process_judges_a_changed_item_within_seconds(
    client: httpx.AsyncClient, settings: Settings, shop: dict[str, dict[str, Any]]
) -> None:
    in_stock = {"filter": "attributes.in_stock = true", "limit": 16}
    async with running(settings) as (_, peer):
        before = await listed(peer, "/api/v1/items/horror-1/similar", **in_stock)
        gone = before[0]
        sold_out = {**shop[gone], "attributes": {"in_stock": False}}
        sold_out.pop("item_id")
        assert (await client.put(f"/api/v1/items/{gone}", json=sold_out)).status_code == 200
        # The peer reads the catalog's changes every INDEX_POLL_SECONDS: asked again until
        # it has, for at most a few polls.
        polls = int(3 * settings.index.poll_seconds / 0.1) + 50
        for _ in range(polls):
            after = await listed(peer, "/api/v1/items/horror-1/similar", **in_stock)
            if gone not in after:
                break
            await asyncio.sleep(0.1)
        assert gone not in after and len(after) == 15


async def test_columns_read_attributes_as_filters_do(client: httpx.AsyncClient, db: Any) -> None:
    """Inner names are object keys only, as a filter reads them: `0` is a key, never a
    list's index."""
    items = [
        {"item_id": "a", "title": "A", "attributes": {"sizes": ["S", "M"], "dims": {"0": 5}}},
        {"item_id": "b", "title": "B", "attributes": {"sizes": {"0": "S"}}},
    ]
    assert (await client.post("/api/v1/items/batch", json={"items": items})).status_code == 200
    assert sorted(await catalog.field_values(db, ("attributes", "sizes", "0"))) == [
        ("a", None),
        ("b", "S"),
    ]
    assert sorted(await catalog.field_values(db, ("attributes", "dims", "0"))) == [
        ("a", 5),
        ("b", None),
    ]


async def test_a_category_is_judged_by_the_items_category_now(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    moved = {**shop["comedy-2"], "category": "Horror"}
    moved.pop("item_id")
    assert (await client.put("/api/v1/items/comedy-2", json=moved)).status_code == 200
    horror = await listed(client, "/api/v1/recommendations/space-fan-0", category="Horror", limit=9)
    assert "comedy-2" in horror
    comedy = await listed(client, "/api/v1/recommendations/space-fan-0", category="Comedy", limit=8)
    assert "comedy-2" not in comedy


async def test_a_filtered_answer_kept_a_minute_is_judged_again_once_an_item_changes(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    asked = {"filter": "attributes.in_stock = true", "exclude_seen": "false", "limit": 5}
    first = await client.get("/api/v1/recommendations/horror-fan-0", params=asked)
    assert (await client.get("/api/v1/recommendations/horror-fan-0", params=asked)).json()["cached"]
    gone = first.json()["items"][0]["item_id"]
    sold_out = {**shop[gone], "attributes": {"in_stock": False}}
    sold_out.pop("item_id")
    assert (await client.put(f"/api/v1/items/{gone}", json=sold_out)).status_code == 200
    after = await listed(client, "/api/v1/recommendations/horror-fan-0", **asked)
    assert gone not in after and len(after) == 5


async def test_a_filter_is_never_code_to_a_store(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    hostile = [
        'title = "\'; DROP TABLE items; --"',
        "attributes.x-1 = 1 or attributes.__proto__ exists",
        'category = "*" or tags contains "%"',
    ]
    for text in hostile:
        found = await listed(client, "/api/v1/items/horror-1/similar", filter=text)
        assert found == []
    assert (await client.get("/api/v1/items/horror-1")).status_code == 200
