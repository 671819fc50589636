"""A/B experiments through the API: the experiments routes, variants in answers, impressions,
attribution, results and the guardrail, over versions built in this process."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.errors import CacheUnavailable, ObjectStoreUnavailable
from experiments import results
from storage import builds
from storage import experiments as stored
from tests.helpers import assert_error, build_now, genre_catalog, running
from tests.service.test_auth import bearer, make_key

GENRES = ("horror", "comedy", "space", "western")
PER_GENRE = 12


def experiment(experiment_id: str = "exp", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "experiment_id": experiment_id,
        # A fixed salt: each run splits the simulated users alike.
        "salt": f"salt-of-{experiment_id}",
        "variants": [
            {"name": "control", "weight": 1, "params": {}},
            {"name": "popular", "weight": 1, "params": {"strategy": "popular"}},
        ],
    }
    return {**body, **fields}


async def start(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/api/v1/experiments", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def fans(client: httpx.AsyncClient, app: FastAPI, users: int) -> int:
    """`users` fans, each of one genre (by number), who liked three of its items; a version
    built over them and served."""
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(PER_GENRE)})
    now = datetime.now(UTC)
    rows = [
        {
            "user_id": f"fan-{n}",
            "item_id": f"{GENRES[n % 4]}-{(n + k) % PER_GENRE}",
            "type": "like",
            "timestamp": (now - timedelta(hours=3 - k)).isoformat(),
        }
        for n in range(users)
        for k in range(3)
    ]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202, answer.text
    await app.state.application.drain()
    version = await build_now(app)
    assert version is not None
    assert app.state.application.serving.current.version == version, "the gate refused it"
    return version


async def recs(client: httpx.AsyncClient, user: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/recommendations/{user}", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def results_of(client: httpx.AsyncClient, experiment_id: str) -> dict[str, dict[str, Any]]:
    answer = await client.get(f"/api/v1/experiments/{experiment_id}/results")
    assert answer.status_code == 200, answer.text
    return {v["name"]: v for v in answer.json()["variants"]}


async def simulate(client: httpx.AsyncClient, users: int, seed: int) -> None:
    """Every fan asks for 5 items under "exp" and clicks each with probability 0.3 when it
    is of their genre, 0.02 otherwise."""
    rng = random.Random(seed)
    clicks = []
    for n in range(users):
        body = await recs(client, f"fan-{n}", limit=5, experiment_id="exp")
        for shown in body["items"]:
            liked = shown["item_id"].startswith(GENRES[n % 4])
            if rng.random() < (0.3 if liked else 0.02):
                clicks.append({"user_id": f"fan-{n}", "item_id": shown["item_id"], "type": "click"})
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": clicks})
    assert answer.status_code == 202, answer.text


async def test_an_experiment_is_created_listed_read_and_stopped(client: httpx.AsyncClient) -> None:
    created = await start(client, experiment(description="popular against hybrid"))
    assert created["active"] is True
    assert [(v["name"], v["control"]) for v in created["variants"]] == [
        ("control", True),
        ("popular", False),
    ]
    listed = (await client.get("/api/v1/experiments")).json()["experiments"]
    assert [(e["experiment_id"], e["active"]) for e in listed] == [("exp", True)]
    assert listed[0]["variants"][1]["params"] == {"strategy": "popular"}
    assert (await client.get("/api/v1/experiments/exp")).json()["description"] == (
        "popular against hybrid"
    )
    stopped = await client.post("/api/v1/experiments/exp/stop", json={"reason": "done"})
    assert stopped.status_code == 200
    assert stopped.json()["active"] is False and stopped.json()["stop_reason"] == "done"
    again = (await client.post("/api/v1/experiments/exp/stop")).json()
    assert again["stopped_at"] == stopped.json()["stopped_at"]
    # Its results stay readable.
    assert set(await results_of(client, "exp")) == {"control", "popular"}
    assert_error(await client.get("/api/v1/experiments/nope"), 404, "not_found")
    assert_error(await client.get("/api/v1/experiments/nope/results"), 404, "not_found")


async def test_an_id_in_use_is_a_conflict_and_changes_nothing(client: httpx.AsyncClient) -> None:
    await start(client, experiment())
    other = experiment(description="another")
    assert_error(await client.post("/api/v1/experiments", json=other), 409, "conflict")
    assert (await client.get("/api/v1/experiments/exp")).json()["description"] is None


def variants(*entries: tuple[str, float, dict[str, Any]], **control: bool) -> list[Any]:
    return [
        {"name": n, "weight": w, "params": p, **({"control": True} if control.get(n) else {})}
        for n, w, p in entries
    ]


@pytest.mark.parametrize(
    ("variant_list", "says"),
    [
        (variants(("control", 0, {}), ("b", 1, {})), "greater than 0"),
        (variants(("control", 1, {}), ("b", -2, {})), "greater than 0"),
        (variants(("control", 1, {}), ("control", 1, {})), "unique"),
        (variants(("a", 1, {}), ("b", 1, {})), "exactly one variant must be the control"),
        (variants(("a", 1, {}), ("b", 1, {}), a=True, b=True), "found 2"),
        (variants(("control", 1, {}), ("b", 1, {"mmr_lamda": 0.5})), "mmr_lamda"),
        (variants(("control", 1, {}), ("b", 1, {"mmr_lambda": 3})), "mmr_lambda"),
        (variants(("control", 1, {}), ("b", 1, {"index_version": 99})), "[99]"),
        (variants(("control", 1, {})), "at least 2"),
    ],
)
async def test_a_bad_experiment_is_refused_naming_the_problem(
    client: httpx.AsyncClient, variant_list: list[Any], says: str
) -> None:
    body = {"experiment_id": "bad", "variants": variant_list}
    error = assert_error(await client.post("/api/v1/experiments", json=body), 422)
    assert says in error["message"], error
    assert (await client.get("/api/v1/experiments")).json()["experiments"] == []


async def test_reading_needs_read_and_writing_needs_admin(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await start(client, experiment())
    read, write = await make_key(client, "read"), await make_key(client, "write")
    assert (await anonymous.get("/api/v1/experiments", headers=bearer(read))).status_code == 200
    results_path = "/api/v1/experiments/exp/results"
    assert (await anonymous.get(results_path, headers=bearer(read))).status_code == 200
    for token in (read, write):
        new = experiment("other")
        posted = await anonymous.post("/api/v1/experiments", json=new, headers=bearer(token))
        assert_error(posted, 403, "forbidden")
        stop = await anonymous.post("/api/v1/experiments/exp/stop", headers=bearer(token))
        assert_error(stop, 403, "forbidden")
    assert_error(await anonymous.get("/api/v1/experiments"), 401)
    assert (await client.get("/api/v1/experiments/exp")).json()["active"] is True


async def test_answers_carry_each_users_sticky_variant(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 40)
    await start(client, experiment())
    seen: dict[str, set[str]] = {"control": set(), "popular": set()}
    for n in range(40):
        first = await recs(client, f"fan-{n}", experiment_id="exp")
        again = await recs(client, f"fan-{n}", experiment_id="exp", offset=2)
        assert first["experiment_state"] == "running"
        assert first["variant"] == again["variant"]
        assert first["strategy"] == ("popular" if first["variant"] == "popular" else "hybrid")
        seen[first["variant"]].add(f"fan-{n}")
    assert seen["control"] and seen["popular"]
    # Without the experiment, everyone gets the default answer, and no variant.
    plain = await recs(client, next(iter(seen["popular"])))
    assert plain["variant"] is None and plain["strategy"] == "hybrid"


async def test_unknown_and_stopped_experiments_get_the_default_answer_and_count_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 20)
    default = await recs(client, "fan-1")
    unknown = await recs(client, "fan-1", experiment_id="no-such-test")
    assert unknown["experiment_state"] == "unknown" and unknown["variant"] is None
    assert unknown["items"] == default["items"]
    await start(
        client,
        experiment(variants=variants(("control", 1, {}), ("pop", 1e6, {"strategy": "popular"}))),
    )
    assert (await recs(client, "fan-1", experiment_id="exp"))["variant"] == "pop"
    await client.post("/api/v1/experiments/exp/stop")
    stopped = await recs(client, "fan-1", experiment_id="exp")
    assert stopped["experiment_state"] == "stopped" and stopped["variant"] is None
    assert stopped["items"] == default["items"]
    counted = await results_of(client, "exp")
    assert counted["pop"]["impressions"] == 10 and counted["pop"]["users"] == 1


async def test_clicks_on_shown_items_within_the_window_are_conversions(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 20)
    only = variants(("control", 1e6, {}), ("never", 1e-6, {}))
    await start(client, experiment(variants=only))
    shown = [
        i["item_id"] for i in (await recs(client, "fan-0", limit=4, experiment_id="exp"))["items"]
    ]
    await recs(client, "fan-0", limit=4, experiment_id="exp")  # the same 4 again
    others = [
        i["item_id"] for i in (await recs(client, "fan-5", limit=3, experiment_id="exp"))["items"]
    ]
    # Clicked before it was shown: not a conversion either (the window opens at the showing).
    early = {"user_id": "fan-0", "item_id": shown[3], "type": "click"}
    await app.state.application.pool.execute(
        """INSERT INTO interactions (event_id, user_id, item_id, type, occurred_at)
           VALUES ('early', $1, $2, $3, now() - interval '1 hour')""",
        early["user_id"],
        early["item_id"],
        early["type"],
    )
    unshown = next(f"{g}-{k}" for g in GENRES for k in range(PER_GENRE) if f"{g}-{k}" not in shown)
    rows = [
        {"user_id": "fan-0", "item_id": shown[0], "type": "click"},
        {"user_id": "fan-0", "item_id": shown[1], "type": "purchase"},
        {"user_id": "fan-0", "item_id": shown[2], "type": "view"},  # not a conversion type
        {"user_id": "fan-0", "item_id": unshown, "type": "click"},  # never shown to them
        {"user_id": "fan-1", "item_id": shown[0], "type": "click"},  # shown to someone else
    ]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    found = (await results_of(client, "exp"))["control"]
    assert found["users"] == 2 and found["impressions"] == 8 + len(others)
    assert found["clicks"] == 2 and found["converted_users"] == 1
    assert found["ctr"] == pytest.approx(2 / (8 + len(others)))
    assert found["conversion_rate"] == 0.5 and found["conversions_per_user"] == 1.0
    # Shown two days ago: a click now is outside the 24-hour window.
    await app.state.application.pool.execute(
        """UPDATE experiment_exposures SET first_shown_at = now() - interval '2 days',
                                           last_shown_at = now() - interval '2 days'
           WHERE user_id = 'fan-5'"""
    )
    click = {"user_id": "fan-5", "item_id": others[0], "type": "click"}
    await client.post("/api/v1/interactions", json=click)
    assert (await results_of(client, "exp"))["control"]["clicks"] == 2


async def test_an_interaction_naming_its_list_is_attributed_to_that_list_exactly(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 20)
    await start(client, experiment(variants=variants(("control", 1e6, {}), ("never", 1e-6, {}))))
    first = await recs(client, "fan-0", limit=3, experiment_id="exp")
    second = await recs(client, "fan-0", limit=3, experiment_id="exp")
    assert first["recommendation_id"] != second["recommendation_id"], "one id per answer"
    shown = [i["item_id"] for i in first["items"]]
    # Shown two days ago: outside the window, so only the list's id can attribute a click.
    await app.state.application.pool.execute(
        """UPDATE experiment_exposures SET first_shown_at = now() - interval '2 days',
                                           last_shown_at = now() - interval '2 days'"""
    )
    similar = (await client.get(f"/api/v1/items/{shown[1]}/similar")).json()
    rows = [
        # From the experiment's list: a conversion, however late.
        {"user_id": "fan-0", "item_id": shown[0], "type": "click", **named(first)},
        # An item the experiment showed, clicked from another list: not the experiment's.
        {"user_id": "fan-0", "item_id": shown[1], "type": "click", **named(similar)},
        # A list that never held the item: no conversion either.
        {"user_id": "fan-0", "item_id": unshown(shown), "type": "click", **named(first)},
    ]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202, answer.text
    control = (await results_of(client, "exp"))["control"]
    assert control["clicks"] == 1 and control["converted_users"] == 1
    stored_ids = await app.state.application.pool.fetch(
        "SELECT recommendation_id FROM interactions ORDER BY interaction_id DESC LIMIT 3"
    )
    assert {r["recommendation_id"] for r in stored_ids} == {
        first["recommendation_id"],
        similar["recommendation_id"],
    }


def named(answer: dict[str, Any]) -> dict[str, str]:
    return {"recommendation_id": answer["recommendation_id"]}


def unshown(shown: list[str]) -> str:
    return next(f"{g}-{k}" for g in GENRES for k in range(PER_GENRE) if f"{g}-{k}" not in shown)


async def test_a_simulated_population_shows_the_better_variant_significant(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 300)
    personal = variants(("control", 1, {"strategy": "popular"}), ("personal", 1, {}), control=True)
    await start(client, experiment(variants=personal))
    await simulate(client, 300, seed=11)
    found = await results_of(client, "exp")
    control, personal_row = found["control"], found["personal"]
    assert control["users"] + personal_row["users"] == 300
    assert personal_row["conversion_rate"] > control["conversion_rate"]
    assert personal_row["significant"] is True and personal_row["p_value"] < 0.001
    assert personal_row["lift"] > 0.3
    low, high = personal_row["difference_ci95"]
    assert 0 < low < personal_row["difference"] < high
    assert control["p_value"] is None and control["significant"] is None
    metrics = (await client.get("/metrics")).text
    shown = float(personal_row["impressions"])
    clicked = float(control["clicks"])
    assert f'impressions_total{{experiment="exp",variant="personal"}} {shown}' in metrics
    assert f'conversions_total{{experiment="exp",variant="control"}} {clicked}' in metrics


async def test_the_guardrail_stops_a_significantly_worse_variant(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 300)
    await start(client, experiment(guardrail=True))
    await simulate(client, 300, seed=12)
    res = app.state.application
    await res.experiments.push()  # the worker's tick counts what the API has sent
    loose = res.settings.experiment.model_copy(update={"guardrail_min_users": 50})
    stopped = await results.tick(res.pool, res.redis, loose, res.settings.event_namespace)
    assert stopped == ["exp/popular"]
    variant = (await client.get("/api/v1/experiments/exp")).json()["variants"][1]
    assert variant["active"] is False and variant["stop_reason"].startswith("guardrail")
    figures = await res.pool.fetchval("SELECT figures FROM experiment_variant_stops")
    assert figures["significant"] is True and figures["difference"] < 0
    # Its users get control's list now, and count for no one.
    await res.experiments.reload()
    before = (await results_of(client, "exp"))["control"]["impressions"]
    user = next(
        f"fan-{n}"
        for n in range(300)
        if res.experiments.find("exp")[1].assigned(f"fan-{n}").name == "popular"
    )
    answer = await recs(client, user, experiment_id="exp")
    assert answer["variant"] is None and answer["strategy"] == "hybrid"
    assert answer["experiment_state"] == "running"
    assert (await results_of(client, "exp"))["control"]["impressions"] == before
    # A second tick stops nothing more.
    assert await results.tick(res.pool, res.redis, loose, res.settings.event_namespace) == []


async def test_a_variant_can_pin_an_older_index_version(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    old = await fans(client, app, 40)
    newer = await build_now(app, force=True)
    assert newer is not None and newer > old
    pinned = variants(("control", 1, {}), ("old", 1, {"index_version": old}))
    await start(client, experiment(variants=pinned))
    answered = {"old": 0, "control": 0}
    for n in range(40):
        body = await recs(client, f"fan-{n}", limit=3, experiment_id="exp")
        assert body["index_version"] == (old if body["variant"] == "old" else newer)
        answered[body["variant"]] += 1
    assert answered["old"] and answered["control"]
    found = await results_of(client, "exp")
    assert set(found["old"]["index_versions"]) == {str(old)}
    assert set(found["control"]["index_versions"]) == {str(newer)}
    # Retention keeps the pinned version while the experiment runs.
    assert old not in await builds.versions_to_retire(app.state.application.pool, keep=1)
    # Rolled back to it, the process serves the copy it holds for the experiment.
    serving = app.state.application.serving
    held = serving.pinned[old]
    assert (await client.post(f"/api/v1/index/versions/{old}/activate")).status_code == 200
    assert serving.current is held
    assert (await recs(client, "fan-1", experiment_id="exp"))["index_version"] == old
    assert (await client.post(f"/api/v1/index/versions/{newer}/activate")).status_code == 200
    await client.post("/api/v1/experiments/exp/stop")
    assert old in await builds.versions_to_retire(app.state.application.pool, keep=1)


async def test_results_survive_an_api_restart(
    client: httpx.AsyncClient, app: FastAPI, settings: Any
) -> None:
    await fans(client, app, 20)
    await start(client, experiment())
    async with running(settings) as (_, peer):
        for n in range(10):
            await recs(peer, f"fan-{n}", limit=2, experiment_id="exp")
    # That process pushed what it held as it stopped; another one counts it.
    async with running(settings) as (_, peer):
        answer = await peer.get("/api/v1/experiments/exp/results")
        counted = {v["name"]: v for v in answer.json()["variants"]}
    assert sum(v["users"] for v in counted.values()) == 10
    assert sum(v["impressions"] for v in counted.values()) == 20
    assert await results_of(client, "exp") == counted


async def test_with_redis_away_answers_go_on_and_impressions_wait(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fans(client, app, 20)
    await start(client, experiment())

    async def away(*_: object, **__: object) -> None:
        raise CacheUnavailable("Redis is unavailable (recording experiment impressions): test")

    monkeypatch.setattr(stored, "append_impressions", away)
    for n in range(5):
        await recs(client, f"fan-{n}", limit=2, experiment_id="exp")
    held = app.state.application.experiments
    with pytest.raises(CacheUnavailable):
        await held.push()
    found = await results_of(client, "exp")
    assert sum(v["impressions"] for v in found.values()) == 0
    monkeypatch.undo()
    found = await results_of(client, "exp")
    assert sum(v["impressions"] for v in found.values()) == 10


async def test_a_pinned_version_that_cannot_load_gets_the_default_answer(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await fans(client, app, 20)
    await build_now(app, force=True)
    serving = app.state.application.serving
    attempts = []

    async def unavailable(version: int, **_: object) -> None:
        attempts.append(version)
        raise ObjectStoreUnavailable("S3 is unavailable: test")

    monkeypatch.setattr(serving, "prepare", unavailable)
    await start(
        client,
        experiment(variants=variants(("control", 1e-6, {}), ("old", 1e6, {"index_version": old}))),
    )
    default = await recs(client, "fan-3")
    for _ in range(3):
        body = await recs(client, "fan-3", experiment_id="exp")
        assert body["experiment_state"] == "running" and body["variant"] is None
        assert body["items"] == default["items"] and body["index_version"] != old
    # One attempt, then requests fail over at once until the retry time.
    assert attempts == [old]
    assert (await results_of(client, "exp"))["old"]["impressions"] == 0


async def test_an_empty_experiment_id_names_no_experiment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 20)
    body = await recs(client, "fan-2", experiment_id="")
    assert body["variant"] is None and body["experiment_state"] is None


async def test_a_non_finite_param_is_refused(client: httpx.AsyncClient) -> None:
    raw = (
        '{"experiment_id": "inf", "variants": [{"name": "control", "weight": 1},'
        ' {"name": "b", "weight": 1, "params": {"content_weight": Infinity}}]}'
    )
    answer = await client.post(
        "/api/v1/experiments", content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 422), answer.text
    assert (await client.get("/api/v1/experiments")).json()["experiments"] == []


async def test_pushes_running_together_send_each_answer_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    held = app.state.application.experiments
    for n in range(300):
        held.record("exp", "control", f"u{n}", ["a", "b"], 1, f"list-{n}")
    await asyncio.gather(*(held.push() for _ in range(5)))
    assert await app.state.application.redis.xlen(stored.STREAM) == 300


async def test_explain_under_a_variant_explains_that_variants_ranking(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await fans(client, app, 40)
    weights = (
        "content_weight",
        "collaborative_weight",
        "ease_weight",
        "cooccurrence_weight",
        "recent_weight",
        "cold_content_weight",
    )
    only_trending = {name: 0.0 for name in weights} | {
        "trending_weight": 1.0,
        "cold_trending_weight": 1.0,
    }
    tested = variants(("control", 1e-6, {}), ("trend", 1e6, only_trending))
    await start(client, experiment(variants=tested))

    def said(body: dict[str, Any]) -> list[str]:
        return [reason for item in body["items"] for reason in item["reasons"]]

    default = said(await recs(client, "fan-0", explain="true"))
    # The blend the build chose speaks of the fan's own items or of users like them.
    assert any(r.startswith(("because you liked", "popular with")) for r in default)
    body = await recs(client, "fan-0", explain="true", experiment_id="exp")
    assert body["variant"] == "trend"
    assert not any(r.startswith(("because you liked", "popular with")) for r in said(body))
