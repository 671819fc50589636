"""A session's list, from the use case every door will call: ranked by the same code as a
user's list, from the session's items alone, with nothing stored."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from service.usecases.session_list import SessionItem, session_list
from storage import activity
from tests.helpers import assert_error
from tests.service.test_recommendations import served

__all__ = ["served"]


async def test_a_session_of_one_genre_gets_that_genre_and_nothing_it_touched(
    app: FastAPI, served: int
) -> None:
    application = app.state.application
    users_before = await application.pool.fetchval("SELECT count(*) FROM users")
    touched = [SessionItem(f"horror-{n}", "like") for n in range(3)]
    found = await session_list(application, [*touched, SessionItem("no-such-item")], limit=4)
    ids = [i for i, _ in found.pairs]
    assert len(ids) == 4 and found.index_version == served and found.strategy == "session"
    assert not {t.item_id for t in touched} & set(ids)
    assert all(i.startswith("horror-") for i in ids[:3]), ids
    assert found.unknown_items == ["no-such-item"]
    # Nothing is stored for a session: no user, no interaction.
    assert await application.pool.fetchval("SELECT count(*) FROM users") == users_before
    assert await activity.recent_history(application.pool, [""], 10) == []


async def test_a_session_the_version_knows_nothing_of_gets_the_popular_items(
    app: FastAPI, served: int
) -> None:
    found = await session_list(app.state.application, [SessionItem("unknown")], limit=3)
    assert len(found.pairs) == 3 and found.strategy == "popular"
    assert found.unknown_items == ["unknown"]


async def test_a_session_through_http(client: httpx.AsyncClient, app: FastAPI, served: int) -> None:
    users_before = await app.state.application.pool.fetchval("SELECT count(*) FROM users")
    body = {
        "items": ["space-1", {"item_id": "space-2", "type": "like"}, "nowhere"],
        "limit": 3,
        "explain": True,
        "fields": ["title", "category"],
    }
    answer = await client.post("/api/v1/recommendations", json=body)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["strategy"] == "session" and found["index_version"] == served
    assert found["unknown_items"] == ["nowhere"]
    assert len(found["items"]) == 3
    for item in found["items"]:
        assert item["item_id"] not in {"space-1", "space-2"}
        assert item["reasons"] and item["category"] == "Space" and item["title"]
    # A page of the same list, within a filter.
    page = await client.post(
        "/api/v1/recommendations",
        json={"items": ["space-1"], "limit": 2, "offset": 2, "filter": 'category = "Space"'},
    )
    whole = await client.post(
        "/api/v1/recommendations",
        json={"items": ["space-1"], "limit": 4, "filter": 'category = "Space"'},
    )
    assert page.json()["items"] == whole.json()["items"][2:]
    assert await app.state.application.pool.fetchval("SELECT count(*) FROM users") == users_before


async def test_a_session_refuses_what_it_cannot_take(
    client: httpx.AsyncClient, served: int
) -> None:
    many = await client.post(
        "/api/v1/recommendations", json={"items": [f"i{n}" for n in range(201)]}
    )
    assert_error(many, 400, "too_many_items")
    typed = await client.post(
        "/api/v1/recommendations", json={"items": [{"item_id": "space-1", "type": "rating"}]}
    )
    assert "items[0].type" in assert_error(typed, 422)["message"]
    assert_error(await client.post("/api/v1/recommendations", json={"items": []}), 422)
    bad = await client.post(
        "/api/v1/recommendations", json={"items": ["space-1"], "filter": "category ="}
    )
    assert_error(bad, 400, "invalid_filter")
