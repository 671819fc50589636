"""A session's list, from the use case every door will call: ranked by the same code as a
user's list, from the session's items alone, with nothing stored."""

from __future__ import annotations

from fastapi import FastAPI

from service.usecases.session_list import SessionItem, session_list
from storage import activity
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
