from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.helpers import assert_error, item


@pytest.fixture
async def catalog(client: httpx.AsyncClient) -> list[str]:
    ids = [f"i{n}" for n in range(5)]
    await client.post("/api/v1/items/batch", json={"items": [item(i) for i in ids]})
    return ids


async def count_interactions(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM interactions"))


async def test_put_and_get_a_user(client: httpx.AsyncClient) -> None:
    answer = await client.put("/api/v1/users/u1", json={"attributes": {"country": "NL"}})
    assert answer.status_code == 200
    user = (await client.get("/api/v1/users/u1")).json()
    assert user["user_id"] == "u1"
    assert user["attributes"] == {"country": "NL"}
    assert user["interaction_count"] == 0
    assert user["last_interaction_at"] is None


async def test_put_without_a_body_field_keeps_an_empty_profile(client: httpx.AsyncClient) -> None:
    assert (await client.put("/api/v1/users/u1", json={})).json()["attributes"] == {}


async def test_an_unknown_user_is_a_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/users/ghost"), 404, "not_found")


async def test_bad_user_bodies_are_refused(client: httpx.AsyncClient) -> None:
    assert_error(await client.put("/api/v1/users/u", json={"attributes": [1]}), 422)
    assert_error(await client.put("/api/v1/users/" + "u" * 129, json={}), 422)


async def test_an_interaction_creates_its_user_and_counts(
    client: httpx.AsyncClient, catalog: list[str]
) -> None:
    when = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    answer = await client.post(
        "/api/v1/interactions",
        json={"user_id": "new", "item_id": "i1", "type": "like", "timestamp": when.isoformat()},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    user = (await client.get("/api/v1/users/new")).json()
    assert user["interaction_count"] == 1
    assert datetime.fromisoformat(user["last_interaction_at"]) == when


async def test_the_same_event_id_counts_once(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    event = {"user_id": "u", "item_id": "i1", "type": "view", "event_id": "e-1"}
    assert (await client.post("/api/v1/interactions", json=event)).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert (await client.post("/api/v1/interactions", json=event)).json() == {
        "accepted": 0,
        "duplicates": 1,
    }
    assert await count_interactions(db) == 1


async def test_an_unknown_item_is_a_404_and_stores_nothing(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    answer = await client.post(
        "/api/v1/interactions", json={"user_id": "u", "item_id": "zzz", "type": "view"}
    )
    assert_error(answer, 404, "unknown_item")
    assert await count_interactions(db) == 0
    assert_error(await client.get("/api/v1/users/u"), 404)


async def test_a_deleted_item_takes_no_new_interactions(
    client: httpx.AsyncClient, catalog: list[str]
) -> None:
    await client.delete("/api/v1/items/i2")
    answer = await client.post(
        "/api/v1/interactions", json={"user_id": "u", "item_id": "i2", "type": "view"}
    )
    assert_error(answer, 404, "unknown_item")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"user_id": "u", "item_id": "i1", "type": "poke"}, "poke"),
        ({"user_id": "u", "item_id": "i1", "type": "rating"}, "rating"),
        ({"user_id": "u", "item_id": "i1", "type": "rating", "value": 0}, "rating"),
        ({"user_id": "u", "item_id": "i1", "type": "rating", "value": 6}, "rating"),
        ({"user_id": "", "item_id": "i1", "type": "view"}, "user_id"),
        ({"user_id": "u", "type": "view"}, "item_id"),
        (
            {"user_id": "u", "item_id": "i1", "type": "view", "timestamp": "2999-01-01T00:00:00Z"},
            "future",
        ),
        ({"user_id": "u", "item_id": "i1", "type": "view", "event_id": "e" * 129}, "event_id"),
    ],
)
async def test_a_bad_interaction_is_refused(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    catalog: list[str],
    body: dict[str, object],
    fragment: str,
) -> None:
    error = assert_error(await client.post("/api/v1/interactions", json=body), 422)
    assert fragment in error["message"]
    assert await count_interactions(db) == 0


async def test_every_configured_type_and_ratings_are_accepted(
    client: httpx.AsyncClient, catalog: list[str]
) -> None:
    kinds = ["view", "click", "like", "superlike", "purchase", "seen", "dislike", "hide"]
    rows = [{"user_id": "u", "item_id": "i1", "type": k} for k in kinds]
    rows += [{"user_id": "u", "item_id": "i2", "type": "rating", "value": v} for v in (1, 3.5, 5)]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 11, "duplicates": 0}


async def test_batch_counts_duplicates_within_and_across_calls(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    def row(n: int) -> dict[str, object]:
        return {"user_id": f"u{n % 3}", "item_id": f"i{n % 5}", "type": "view", "event_id": f"e{n}"}

    first = [row(n) for n in range(10)] + [row(3)]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": first})
    assert answer.json() == {"accepted": 10, "duplicates": 1}
    again = [row(n) for n in range(5, 15)]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": again})
    assert answer.json() == {"accepted": 5, "duplicates": 5}
    assert await count_interactions(db) == 15


async def test_rows_without_event_id_always_count(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    rows = [{"user_id": "u", "item_id": "i1", "type": "view"}] * 3
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.json() == {"accepted": 3, "duplicates": 0}
    assert await count_interactions(db) == 3


async def test_batch_with_unknown_items_names_each_row_and_stores_nothing(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    rows = [{"user_id": f"new{n}", "item_id": "i1", "type": "view"} for n in range(6)]
    rows[2]["item_id"] = "gone"
    rows[5]["item_id"] = "gone"
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    error = assert_error(answer, 422, "unknown_item")
    assert [(d["index"], d["item_id"]) for d in error["details"]] == [(2, "gone"), (5, "gone")]
    assert await count_interactions(db) == 0
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_batch_with_an_invalid_row_names_it_and_stores_nothing(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    rows = [{"user_id": "u", "item_id": "i1", "type": "view"} for _ in range(5)]
    rows[3]["type"] = "teleport"
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    error = assert_error(answer, 422, "invalid_request")
    assert error["details"][0]["index"] == 3
    assert await count_interactions(db) == 0


async def test_batch_caps_at_ten_thousand_rows(
    client: httpx.AsyncClient, db: asyncpg.Pool, catalog: list[str]
) -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    rows = [
        {
            "user_id": f"u{n % 100}",
            "item_id": f"i{n % 5}",
            "type": "view",
            "timestamp": (start + timedelta(seconds=n)).isoformat(),
            "event_id": f"e{n}",
        }
        for n in range(10_001)
    ]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert_error(answer, 422, "batch_too_large")
    assert await count_interactions(db) == 0
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows[:10_000]})
    assert answer.json() == {"accepted": 10_000, "duplicates": 0}
    user = (await client.get("/api/v1/users/u7")).json()
    assert user["interaction_count"] == 100


async def test_a_users_history_pages_newest_first(client: httpx.AsyncClient) -> None:
    items = [item(f"h{n}") for n in range(5)]
    assert (await client.post("/api/v1/items/batch", json={"items": items})).status_code == 200
    rows = [
        {
            "user_id": "reader",
            "item_id": f"h{n % 5}",
            "type": "rating" if n == 3 else "view",
            "value": 4 if n == 3 else None,
            "timestamp": f"2026-01-0{1 + n // 2}T00:00:00Z",  # pairs share a time
            "event_id": f"e{n}",
        }
        for n in range(7)
    ]
    for row in rows:
        if row["value"] is None:
            del row["value"]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202
    pages, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/api/v1/users/reader/interactions", params=params)
        assert page.status_code == 200, page.text
        pages.append(page.json()["interactions"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [i["event_id"] for p in pages for i in p]
    assert seen == ["e6", "e5", "e4", "e3", "e2", "e1", "e0"]  # newest first, ties by arrival
    rated = next(i for p in pages for i in p if i["event_id"] == "e3")
    assert rated == {
        "item_id": "h3",
        "type": "rating",
        "value": 4.0,
        "timestamp": "2026-01-02T00:00:00Z",
        "event_id": "e3",
    }
    assert_error(await client.get("/api/v1/users/nobody/interactions"), 404)
    refused = await client.get("/api/v1/users/reader/interactions", params={"cursor": "x"})
    assert_error(refused, 422)
