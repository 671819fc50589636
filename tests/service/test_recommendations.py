"""Answers through the API over a version built in this process (the fake encoder)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from indexing import ranking
from indexing.hybrid import SOURCES
from service import lists, profiles
from tests.helpers import assert_error, build_now, count_rankings, genre_catalog

GENRES = ("horror", "comedy", "space", "western")


@pytest.fixture
async def served(client: httpx.AsyncClient, app: FastAPI) -> int:
    """32 items in four genres; fans who like one genre each; a version built and served."""
    await client.post("/api/v1/items/batch", json={"items": genre_catalog()})
    rows = []
    for genre in GENRES:
        for fan in range(3):
            for k in range(4):
                rows.append(
                    {
                        "user_id": f"{genre}-fan-{fan}",
                        "item_id": f"{genre}-{(fan + k) % 8}",
                        "type": "like",
                        "event_id": f"{genre}-{fan}-{k}",
                    }
                )
    # Space is the most watched genre overall.
    rows += [
        {"user_id": f"viewer-{n}", "item_id": f"space-{n % 2}", "type": "view"} for n in range(10)
    ]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.drain()
    version = await build_now(app)
    assert version is not None
    return version


def genre_of(item_id: str) -> str:
    return item_id.split("-")[0]


async def recs(client: httpx.AsyncClient, user: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/recommendations/{user}", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_fan_is_recommended_their_genre(client: httpx.AsyncClient, served: int) -> None:
    body = await recs(client, "horror-fan-0", limit=4)
    assert body["strategy"] == "hybrid"
    assert body["index_version"] == served
    assert [genre_of(i["item_id"]) for i in body["items"]] == ["horror"] * 4
    seen = {f"horror-{k}" for k in range(4)}
    assert not seen & {i["item_id"] for i in body["items"]}


async def test_exclude_seen_false_lets_seen_items_back(
    client: httpx.AsyncClient, served: int
) -> None:
    body = await recs(client, "horror-fan-0", limit=8, exclude_seen="false")
    assert {f"horror-{k}" for k in range(4)} & {i["item_id"] for i in body["items"]}


async def test_an_unknown_user_gets_popular_items(client: httpx.AsyncClient, served: int) -> None:
    body = await recs(client, "stranger", limit=2)
    assert body["strategy"] == "popular"
    assert {i["item_id"] for i in body["items"]} == {"space-0", "space-1"}


async def test_five_likes_turn_a_new_user_at_once(client: httpx.AsyncClient, served: int) -> None:
    for k in range(5):
        answer = await client.post(
            "/api/v1/interactions",
            json={"user_id": "newcomer", "item_id": f"western-{k}", "type": "like"},
        )
        assert answer.status_code == 202
    body = await recs(client, "newcomer", limit=3)
    assert body["strategy"] == "hybrid"
    assert [genre_of(i["item_id"]) for i in body["items"]] == ["western"] * 3
    assert not {f"western-{k}" for k in range(5)} & {i["item_id"] for i in body["items"]}


async def test_a_batch_of_interactions_changes_answers_too(
    client: httpx.AsyncClient, app: FastAPI, served: int
) -> None:
    rows = [{"user_id": "batcher", "item_id": f"comedy-{k}", "type": "like"} for k in range(4)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.drain()
    body = await recs(client, "batcher", limit=3)
    assert [genre_of(i["item_id"]) for i in body["items"]] == ["comedy"] * 3


async def test_a_deleted_item_leaves_every_answer_at_once(
    client: httpx.AsyncClient, served: int
) -> None:
    before = await recs(client, "horror-fan-0", limit=1)
    gone = before["items"][0]["item_id"]
    assert (await client.delete(f"/api/v1/items/{gone}")).status_code == 204
    after = await recs(client, "horror-fan-0", limit=20)
    assert gone not in {i["item_id"] for i in after["items"]}
    similar = (await client.get("/api/v1/items/horror-0/similar", params={"limit": 20})).json()
    assert gone not in {i["item_id"] for i in similar["items"]}
    assert_error(await client.get(f"/api/v1/items/{gone}/similar"), 404)


async def test_offset_pages_through_one_list(
    client: httpx.AsyncClient, app: FastAPI, served: int
) -> None:
    # space-fan-1 is answered from the list the build ranked; space-fan-2, who acts after
    # the build, from the list ranked ahead after the refresh, also within a category; with
    # seen items left in, from a list ranked live and kept for a minute.
    like = {"user_id": "space-fan-2", "item_id": "space-7", "type": "like"}
    assert (await client.post("/api/v1/interactions", json=like)).status_code == 202
    await app.state.application.drain()
    for user, asked, cached in (
        ("space-fan-1", {}, False),
        ("space-fan-2", {}, False),
        ("space-fan-2", {"category": "Space"}, False),
        ("space-fan-2", {"exclude_seen": "false"}, True),
    ):
        whole = await recs(client, user, limit=12, **asked)
        first = await recs(client, user, limit=6, **asked)
        second = await recs(client, user, limit=6, offset=6, **asked)
        assert first["items"] + second["items"] == whole["items"]
        assert second["cached"] is cached


async def test_category_filter(client: httpx.AsyncClient, served: int) -> None:
    body = await recs(client, "horror-fan-0", limit=5, category="Comedy")
    assert body["items"] and all(genre_of(i["item_id"]) == "comedy" for i in body["items"])


async def test_explain_gives_reasons(client: httpx.AsyncClient, served: int) -> None:
    body = await recs(client, "horror-fan-0", limit=2, explain="true")
    for item in body["items"]:
        assert item["reasons"] and item["reasons"][0].startswith("because you liked ")
    item_id = body["items"][0]["item_id"]
    answer = (await client.get(f"/api/v1/recommendations/horror-fan-0/explain/{item_id}")).json()
    assert answer["rank"] == 0
    assert answer["score"] == pytest.approx(body["items"][0]["score"], abs=1e-5)
    parts = answer["components"]
    blended = sum(parts[f"{s}_weight"] * parts[f"{s}_scaled"] for s in SOURCES)
    pushed = blended - parts["negative_weight"] * parts["negative_push"]
    assert answer["score"] == pytest.approx(pushed, abs=1e-5)
    assert parts["content"] > 0


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset")],
)
async def test_bad_parameters_are_refused(
    client: httpx.AsyncClient, params: dict[str, int], field: str
) -> None:
    error = assert_error(await client.get("/api/v1/recommendations/u", params=params), 422)
    assert field in error["message"]


async def test_similar_items_share_their_genre(client: httpx.AsyncClient, served: int) -> None:
    body = (await client.get("/api/v1/items/space-3/similar", params={"limit": 5})).json()
    assert body["index_version"] == served
    ids = [i["item_id"] for i in body["items"]]
    assert "space-3" not in ids and len(ids) == 5
    assert sum(genre_of(i) == "space" for i in ids) >= 4
    assert_error(await client.get("/api/v1/items/nope/similar"), 404)


async def test_similar_items_come_from_the_build_as_a_live_search_finds_them(
    client: httpx.AsyncClient, app: FastAPI, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = app.state.application.serving.current
    assert version.nearest is not None and version.nearest.items == 32
    searches = []
    search = ranking.similar_items

    def counted(*args: Any, **kwargs: Any) -> ranking.Ranked:
        searches.append(kwargs["among"])
        return search(*args, **kwargs)

    monkeypatch.setattr(ranking, "similar_items", counted)
    for item_id in ("space-3", "horror-0"):
        row = version.item_row[item_id]
        for params in ({"limit": 5}, {"limit": 31}, {"limit": 5, "category": "Space"}):
            answer = await client.get(f"/api/v1/items/{item_id}/similar", params=params)
            live = search(
                version,
                version.item_vectors[row],
                limit=params["limit"],
                among=version.in_category(params["category"]) if "category" in params else None,
                excluded={row},
            )
            assert [i["item_id"] for i in answer.json()["items"]] == [
                version.item_ids[r] for r in live.rows
            ]
    # Within a category, the build's nearest answer as far as they hold enough of it; only
    # the requests naming a category may have been searched live.
    assert all(among is not None for among in searches)


async def test_an_item_newer_than_the_index_gets_neighbours(
    client: httpx.AsyncClient, served: int
) -> None:
    await client.put("/api/v1/items/late", json={"title": "zombie crypt ghost", "tags": ["horror"]})
    body = (await client.get("/api/v1/items/late/similar", params={"limit": 3})).json()
    assert [genre_of(i["item_id"]) for i in body["items"]] == ["horror"] * 3


async def test_similar_users_share_a_genre(client: httpx.AsyncClient, served: int) -> None:
    body = (await client.get("/api/v1/users/comedy-fan-0/similar", params={"limit": 2})).json()
    assert [u["user_id"].split("-")[0] for u in body["users"]] == ["comedy", "comedy"]
    high = (
        await client.get("/api/v1/users/comedy-fan-0/similar", params={"min_similarity": 0.999})
    ).json()
    assert all(u["similarity"] >= 0.999 for u in high["users"])


async def test_search_finds_items_by_meaning(client: httpx.AsyncClient, served: int) -> None:
    answer = await client.post("/api/v1/search", json={"text": "cowboy outlaw saloon", "limit": 3})
    assert [genre_of(i["item_id"]) for i in answer.json()["items"]] == ["western"] * 3
    assert_error(await client.post("/api/v1/search", json={"text": ""}), 422)


async def test_trending_hot_ranks_engagement(client: httpx.AsyncClient, served: int) -> None:
    body = (await client.get("/api/v1/trending", params={"limit": 3})).json()
    assert body["variant"] == "hot"
    assert len(body["items"]) == 3
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    by_category = (
        await client.get("/api/v1/trending", params={"category": "Horror", "limit": 50})
    ).json()
    assert by_category["items"] and all(
        genre_of(i["item_id"]) == "horror" for i in by_category["items"]
    )
    assert_error(await client.get("/api/v1/trending", params={"variant": "lukewarm"}), 422)


async def test_without_any_version_answers_come_from_popularity(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    app.state.application.serving.current = None
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(2)})
    rows = [{"user_id": f"v{n}", "item_id": "comedy-1", "type": "view"} for n in range(3)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    body = await recs(client, "anyone")
    assert body["strategy"] == "popular" and body["index_version"] is None
    assert body["items"][0]["item_id"] == "comedy-1"


async def test_a_read_key_reads_answers_but_nothing_else(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, served: int
) -> None:
    token = (await client.post("/api/v1/keys", json={"name": "app", "role": "read"})).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert (await anonymous.get("/api/v1/recommendations/u", headers=headers)).status_code == 200
    assert (await anonymous.get("/api/v1/trending", headers=headers)).status_code == 200
    assert_error(await anonymous.get("/api/v1/index/versions", headers=headers), 403)
    assert_error(await anonymous.get("/api/v1/recommendations/u"), 401)


async def test_no_cache_ranks_afresh(client: httpx.AsyncClient, app: FastAPI, served: int) -> None:
    # A list with seen items left in is ranked live, and kept for a minute.
    like = {"user_id": "comedy-fan-0", "item_id": "comedy-7", "type": "like"}
    assert (await client.post("/api/v1/interactions", json=like)).status_code == 202
    await app.state.application.drain()  # the profile refresh has landed
    first = await recs(client, "comedy-fan-0", exclude_seen="false")
    assert first["cached"] is False
    assert (await recs(client, "comedy-fan-0", exclude_seen="false"))["cached"] is True
    fresh = await client.get(
        "/api/v1/recommendations/comedy-fan-0?exclude_seen=false",
        headers={"Cache-Control": "no-cache"},
    )
    assert fresh.json()["cached"] is False
    again = fresh.json()["items"]
    assert [i["item_id"] for i in again] == [i["item_id"] for i in first["items"]]
    # Two live rankings may differ in the last float32 digit (threaded BLAS sums).
    assert [i["score"] for i in again] == pytest.approx(
        [i["score"] for i in first["items"]], abs=1e-5
    )


async def test_a_user_who_acts_gets_the_list_a_live_ranking_gives_ranked_ahead(
    client: httpx.AsyncClient, app: FastAPI, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.state.application
    users = ["western-fan-0", "horror-fan-2"]
    for user in users:
        like = {"user_id": user, "item_id": "space-5", "type": "like"}
        assert (await client.post("/api/v1/interactions", json=like)).status_code == 202
    await res.drain()  # refreshed, and ranked ahead
    calls = count_rankings(monkeypatch)
    decode = lists.decode
    no_cache = {"Cache-Control": "no-cache"}
    ahead = {}
    for user in users:
        answer = await client.get(f"/api/v1/recommendations/{user}?limit=8", headers=no_cache)
        ahead[user] = answer.json()["items"]
        assert "space-5" not in {i["item_id"] for i in ahead[user]}
    assert calls == []
    # The same lists, ranked live now.
    monkeypatch.setattr(lists, "decode", lambda *args: None)
    for user in users:
        answer = await client.get(f"/api/v1/recommendations/{user}?limit=8", headers=no_cache)
        live = answer.json()["items"]
        assert [i["item_id"] for i in live] == [i["item_id"] for i in ahead[user]]
        assert [i["score"] for i in live] == pytest.approx(
            [i["score"] for i in ahead[user]], abs=1e-5
        )
    assert calls == [1, 1]
    monkeypatch.setattr(lists, "decode", decode)
    # A profile stored after the list was ranked makes it stale: ranked live (stored by this
    # process: test_stored_profiles.py has another's, heard once it is announced).
    current, stored = res.serving.current, res.serving.profile_stamps
    await profiles.refresh(res.pool, res.redis, res.settings, current, users[:1], stored)
    await client.get(f"/api/v1/recommendations/{users[0]}?limit=8", headers=no_cache)
    assert calls == [1, 1, 1]
    # So does a process ranking with other settings.
    monkeypatch.setattr(res.serving, "_digests", {res.serving.current.version: "other"})
    await client.get(f"/api/v1/recommendations/{users[1]}?limit=8", headers=no_cache)
    assert calls == [1, 1, 1, 1]


@pytest.fixture
def two_waiting(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most two users wait to be ranked ahead."""
    res = app.state.application
    bound = res.settings.api.model_copy(update={"rank_ahead_users": 2})
    monkeypatch.setattr(res.refresher, "settings", res.settings.model_copy(update={"api": bound}))


async def test_lists_wait_to_be_ranked_ahead_up_to_a_bound(
    client: httpx.AsyncClient, app: FastAPI, served: int, two_waiting: None
) -> None:
    res = app.state.application
    rows = [{"user_id": f"comedy-fan-{n}", "item_id": "space-6", "type": "like"} for n in range(3)]
    assert (await client.post("/api/v1/interactions/batch", json={"interactions": rows})).is_success
    await res.drain()
    stored = [await res.redis.get(f"recs:ranked:comedy-fan-{n}") for n in range(3)]
    assert sum(s is not None for s in stored) == 2


async def test_users_idle_since_the_build_take_no_room_among_those_ranked_ahead(
    client: httpx.AsyncClient, app: FastAPI, served: int, two_waiting: None
) -> None:
    res = app.state.application
    # A refresh of users who did nothing since the build (after a bulk load, say): the
    # build's lists answer them, and nothing waits to be ranked.
    idle = [f"{genre}-fan-{n}" for genre in GENRES for n in range(3)]
    await res.refresher._refresh(idle)
    assert res.refresher._to_rank == {}
    rows = [{"user_id": f"space-fan-{n}", "item_id": "horror-6", "type": "like"} for n in range(2)]
    assert (await client.post("/api/v1/interactions/batch", json={"interactions": rows})).is_success
    await res.drain()
    for n in range(2):
        assert await res.redis.get(f"recs:ranked:space-fan-{n}") is not None


async def test_a_slow_ranking_does_not_hold_up_other_requests(
    client: httpx.AsyncClient, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real = ranking.recommend

    def slow(*args: Any, **kwargs: Any) -> ranking.Ranked:
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(ranking, "recommend", slow)
    # A list with seen items left in is always ranked live.
    pending = asyncio.create_task(recs(client, "western-fan-1", exclude_seen="false"))
    try:
        assert await asyncio.to_thread(started.wait, 10)
        # The ranking is stuck on its thread; the event loop still answers.
        health = await asyncio.wait_for(client.get("/health"), timeout=2)
        assert health.status_code == 200
        similar = await asyncio.wait_for(client.get("/api/v1/items/space-0/similar"), timeout=2)
        assert similar.status_code == 200
        assert not pending.done()
    finally:
        release.set()
    body = await asyncio.wait_for(pending, timeout=10)
    assert [genre_of(i["item_id"]) for i in body["items"][:3]] == ["western"] * 3


async def test_a_user_idle_since_the_build_gets_the_list_the_build_ranked(
    client: httpx.AsyncClient, app: FastAPI, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = app.state.application.serving
    assert serving.current.lists is not None and serving.current.lists.users == 22
    fans = [f"{genre}-fan-{n}" for genre in GENRES for n in range(3)]
    kept = {fan: (await recs(client, fan, limit=8))["items"] for fan in fans}
    # The same lists, ranked live now.
    monkeypatch.setattr(serving, "kept_lists", lambda version: None)
    no_cache = {"Cache-Control": "no-cache"}
    for fan in fans:
        live = (await client.get(f"/api/v1/recommendations/{fan}?limit=8", headers=no_cache)).json()
        assert [i["item_id"] for i in live["items"]] == [i["item_id"] for i in kept[fan]], fan
        assert [i["score"] for i in live["items"]] == pytest.approx(
            [i["score"] for i in kept[fan]], abs=1e-5
        )
    monkeypatch.undo()
    serving.answers.drop(fans)  # the live answers were kept for a minute

    calls = count_rankings(monkeypatch)
    again = await recs(client, "horror-fan-1", limit=4)
    assert again["items"] == kept["horror-fan-1"][:4] and again["cached"] is False
    # A profile stored after the build that says what the build knew (a refresh after a
    # bulk load) still gets the kept list.
    res = app.state.application
    await profiles.refresh(res.pool, res.redis, res.settings, serving.current, ["horror-fan-1"])
    serving.answers.drop(["horror-fan-1"])
    assert (await recs(client, "horror-fan-1", limit=4))["items"] == kept["horror-fan-1"][:4]
    assert calls == []
    # A like after the build: ranked once, ahead of the request, without the item liked.
    liked = kept["horror-fan-1"][0]["item_id"]
    like = {"user_id": "horror-fan-1", "item_id": liked, "type": "like"}
    assert (await client.post("/api/v1/interactions", json=like)).status_code == 202
    await res.drain()
    after = await recs(client, "horror-fan-1", limit=4)
    assert calls == [1] and liked not in {i["item_id"] for i in after["items"]}
    # A category reads the kept list through it; a list with seen items left in, or one
    # kept with other settings, is ranked live.
    within = await recs(client, "comedy-fan-1", limit=4, category="Comedy")
    assert calls == [1]
    assert all(genre_of(i["item_id"]) == "comedy" for i in within["items"])
    await recs(client, "comedy-fan-1", limit=4, exclude_seen="false")
    assert calls == [1, 1]
    monkeypatch.setattr(serving, "_kept_usable", {serving.current.version: False})
    await client.get("/api/v1/recommendations/comedy-fan-2?limit=4", headers=no_cache)
    assert calls == [1, 1, 1]
    monkeypatch.setattr(serving, "_kept_usable", {})
    # An A/A experiment's variants rank as served: their users' kept lists are their lists.
    alike = [{"name": n, "weight": 1, "params": {}} for n in ("control", "same")]
    created = await client.post(
        "/api/v1/experiments", json={"experiment_id": "e", "variants": alike}
    )
    assert created.status_code == 201, created.text
    tested = await recs(client, "western-fan-2", limit=4, experiment_id="e")
    assert calls == [1, 1, 1] and tested["variant"] in ("control", "same")
    assert tested["items"] == kept["western-fan-2"][:4]
    # A variant that ranks otherwise is ranked live.
    other = [
        {"name": "control", "weight": 1, "params": {}},
        {"name": "fresh", "weight": 1000, "params": {"trending_weight": 0.5}},
    ]
    created = await client.post(
        "/api/v1/experiments", json={"experiment_id": "f", "variants": other}
    )
    assert created.status_code == 201, created.text
    ranked = await recs(client, "western-fan-2", limit=4, experiment_id="f")
    assert ranked["variant"] == "fresh" and calls == [1, 1, 1, 1]
    await recs(client, "western-fan-1", limit=4)
    assert calls == [1, 1, 1, 1]
