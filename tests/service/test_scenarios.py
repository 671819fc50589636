"""Scenarios: stored by admins, applied with `scenario=` on the list endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from common.settings import Settings
from tests.helpers import assert_error, listed, running

ITEMS = "/api/v1/recommendations/horror-fan-0"


async def put(client: httpx.AsyncClient, scenario_id: str, **body: Any) -> dict[str, Any]:
    answer = await client.put(f"/api/v1/scenarios/{scenario_id}", json=body)
    assert answer.status_code == 200, answer.text
    stored: dict[str, Any] = answer.json()
    return stored


def genre(item_id: str) -> str:
    return item_id.split("-")[0]


async def test_scenarios_are_stored_listed_replaced_and_deleted(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    stored = await put(
        client,
        "home",
        description="the home page",
        filter="attributes.in_stock = true",
        boosters=[{"filter": 'category = "Comedy"', "weight": 2}],
        diversity={"max_per_category": 3},
    )
    assert stored["scenario_id"] == "home" and stored["strategy"] == "hybrid"
    assert stored["boosters"] == [{"filter": 'category = "Comedy"', "weight": 2.0}]
    assert (await client.get("/api/v1/scenarios/home")).json() == stored
    replaced = await put(client, "home", strategy="popular")
    assert replaced["filter"] is None and replaced["created_at"] == stored["created_at"]
    await put(client, "cart", strategy="trending:hot")
    listing = (await client.get("/api/v1/scenarios")).json()
    assert [s["scenario_id"] for s in listing["scenarios"]] == ["cart", "home"]
    assert (await client.delete("/api/v1/scenarios/home")).status_code == 204
    assert_error(await client.get("/api/v1/scenarios/home"), 404, "unknown_scenario")
    assert_error(await client.delete("/api/v1/scenarios/home"), 404, "unknown_scenario")
    # Admins only.
    anonymous.headers["Authorization"] = "Bearer nobody"
    assert (await anonymous.get("/api/v1/scenarios")).status_code == 401


async def test_a_scenario_with_a_malformed_filter_is_refused_naming_it(
    client: httpx.AsyncClient,
) -> None:
    bad = {"boosters": [{"filter": "category =", "weight": 2}]}
    refused = await client.put("/api/v1/scenarios/bad", json=bad)
    error = assert_error(refused, 400, "invalid_filter")
    assert error["details"][0]["field"] == "boosters[0].filter"
    assert_error(await client.get("/api/v1/scenarios/bad"), 404)
    zero = {"boosters": [{"filter": 'category = "A"', "weight": 0}]}
    assert_error(await client.put("/api/v1/scenarios/bad", json=zero), 422)


async def test_a_scenarios_filter_applies_with_the_requests_own_on_top(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    await put(client, "in-stock", filter="attributes.in_stock = true")
    for path in (ITEMS, "/api/v1/items/horror-1/similar", "/api/v1/trending"):
        found = await listed(client, path, scenario="in-stock", limit=12)
        assert len(found) == 12
        assert all(shop[i]["attributes"]["in_stock"] for i in found)
        both = await listed(
            client, path, scenario="in-stock", filter='category = "Space"', limit=12
        )
        assert both and all(
            shop[i]["attributes"]["in_stock"] and shop[i]["category"] == "Space" for i in both
        )
    searched = await client.post(
        "/api/v1/search", json={"text": "ghost", "scenario": "in-stock", "limit": 12}
    )
    assert all(shop[i["item_id"]]["attributes"]["in_stock"] for i in searched.json()["items"])
    for answer in (
        await client.get(ITEMS, params={"scenario": "nope"}),
        await client.get("/api/v1/trending", params={"scenario": "nope"}),
        await client.post("/api/v1/search", json={"text": "a", "scenario": "nope"}),
    ):
        assert_error(answer, 404, "unknown_scenario")


async def test_boosters_raise_and_lower_and_explain_says_which(
    client: httpx.AsyncClient,
    shop: dict[str, dict[str, Any]],
) -> None:
    plain = await listed(client, ITEMS, limit=4)
    assert {genre(i) for i in plain} == {"horror"}
    await put(client, "comedy", boosters=[{"filter": 'category = "Comedy"', "weight": 1000}])
    answer = await client.get(ITEMS, params={"scenario": "comedy", "limit": 4, "explain": "true"})
    items = answer.json()["items"]
    assert {genre(i["item_id"]) for i in items} == {"comedy"}
    assert all('boosted x1000 by category = "Comedy"' in i["reasons"] for i in items)
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    # The explanation of one item says so too, with the boosters' product.
    why = await client.get(f"{ITEMS}/explain/comedy-3", params={"scenario": "comedy"})
    assert why.json()["components"]["boost"] == 1000
    assert 'boosted x1000 by category = "Comedy"' in why.json()["reasons"]
    why = await client.get(f"{ITEMS}/explain/horror-5", params={"scenario": "comedy"})
    assert why.json()["components"]["boost"] == 1 and not any(
        r.startswith("boosted") for r in why.json()["reasons"]
    )
    # Below 1 lowers: the fan's own genre sinks under everything else.
    await put(client, "no-horror", boosters=[{"filter": 'category = "Horror"', "weight": 1e-6}])
    lowered = await listed(client, ITEMS, scenario="no-horror", limit=28)  # all unseen
    horror = [n for n, i in enumerate(lowered) if genre(i) == "horror"]
    assert horror and min(horror) > max(n for n, i in enumerate(lowered) if genre(i) != "horror")
    # A weight of 1 changes nothing.
    await put(client, "same", boosters=[{"filter": 'category = "Comedy"', "weight": 1}])
    assert await listed(client, ITEMS, scenario="same", limit=4) == plain


async def test_strategy_exclude_seen_and_diversity(
    client: httpx.AsyncClient,
    shop: dict[str, dict[str, Any]],
) -> None:
    await put(client, "popular", strategy="popular")
    body = (await client.get(ITEMS, params={"scenario": "popular"})).json()
    assert body["strategy"] == "popular"
    await put(client, "hot", strategy="trending:hot")
    body = (await client.get(ITEMS, params={"scenario": "hot"})).json()
    assert body["strategy"] == "trending:hot" and body["items"]
    seen = {f"horror-{k}" for k in range(4)}
    await put(client, "again", exclude_seen=False)
    again = await listed(client, ITEMS, scenario="again", limit=8)
    assert seen & set(again)
    # The request's own exclude_seen applies on top.
    assert not seen & set(await listed(client, ITEMS, scenario="again", exclude_seen="true"))
    await put(client, "varied", diversity={"max_per_category": 1})
    varied = await listed(client, ITEMS, scenario="varied", limit=4)
    assert len({shop[i]["category"] for i in varied}) == 4


async def test_another_process_applies_a_change_within_seconds(
    client: httpx.AsyncClient, settings: Settings, shop: dict[str, dict[str, Any]]
) -> None:
    async with running(settings) as (_, peer):
        assert_error(await peer.get(ITEMS, params={"scenario": "later"}), 404)
        await put(client, "later", filter='category = "Western"')
        # Announced at once; read by the peer's poll should the announcement be lost.
        polls = int(3 * settings.index.poll_seconds / 0.1) + 50
        for _ in range(polls):
            answer = await peer.get(ITEMS, params={"scenario": "later"})
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert answer.status_code == 200
        assert {genre(i["item_id"]) for i in answer.json()["items"]} == {"western"}


async def test_an_experiment_variant_may_name_a_scenario(
    client: httpx.AsyncClient, app: FastAPI, shop: dict[str, dict[str, Any]]
) -> None:
    await put(client, "westerns", filter='category = "Western"')
    variants = [
        {"name": "control", "weight": 0.0001, "params": {}},
        {"name": "placed", "weight": 1, "params": {"scenario": "westerns"}},
    ]
    created = await client.post(
        "/api/v1/experiments", json={"experiment_id": "rules", "variants": variants}
    )
    assert created.status_code == 201, created.text
    body = (await client.get(ITEMS, params={"experiment_id": "rules", "limit": 4})).json()
    assert body["variant"] == "placed"
    assert {genre(i["item_id"]) for i in body["items"]} == {"western"}
    # It replaces the request's scenario.
    await put(client, "comedies", filter='category = "Comedy"')
    asked = {"experiment_id": "rules", "scenario": "comedies", "limit": 4}
    body = (await client.get(ITEMS, params=asked)).json()
    assert {genre(i["item_id"]) for i in body["items"]} == {"western"}


async def test_pages_of_a_boosted_list_never_overlap(
    client: httpx.AsyncClient, shop: dict[str, dict[str, Any]]
) -> None:
    boosts = [
        {"filter": 'category = "Space"', "weight": 3},
        {"filter": "attributes.price < 100", "weight": 0.5},
    ]
    await put(client, "mixed", boosters=boosts)
    whole = await listed(client, ITEMS, scenario="mixed", limit=24)
    pages = [
        await listed(client, ITEMS, scenario="mixed", limit=8, offset=offset)
        for offset in (0, 8, 16)
    ]
    assert [i for page in pages for i in page] == whole
