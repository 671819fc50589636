"""The lists a build's precompute had no time for, ranked in parts: by the build itself
before its version goes live, and what is left of them once it is live, folded in by the API
as each part is announced, by a process that starts later, and again after a part could not
be read."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.errors import ObjectStoreUnavailable
from common.settings import Settings
from embeddings.encoder import make_encoder
from indexing import publish
from indexing.artifacts import IndexVersion
from storage import builds
from storage.blob.s3 import S3Store
from tests.helpers import build_now, count_rankings, genre_catalog, until
from workers import lists, pipeline
from workers.context import BuildContext
from workers.lists import Filler, Filling, fill_lists, fill_part, resume
from workers.pipeline import RANKING_LISTS, build_version

GENRES = ("horror", "comedy", "space", "western")


@pytest.fixture
async def catalog(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Twelve genre fans and ten viewers."""
    await client.post("/api/v1/items/batch", json={"items": genre_catalog()})
    rows = [
        {"user_id": f"{g}-fan-{f}", "item_id": f"{g}-{(f + k) % 8}", "type": "like"}
        for g in GENRES
        for f in range(3)
        for k in range(4)
    ]
    rows += [
        {"user_id": f"viewer-{n}", "item_id": f"space-{n % 2}", "type": "view"} for n in range(10)
    ]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.drain()


@pytest.fixture
async def built(catalog: None, app: FastAPI, settings: Settings) -> Filling:
    """A version built with no time for their lists, neither within its precompute nor
    before it went live: activated and served, all 22 lists left to rank."""
    res = app.state.application
    outcome = await build_version(
        res.pool,
        res.store,
        make_encoder(settings.embedding.model),
        with_index(settings, precompute_seconds=0.0, fill_seconds=0.0),
        BuildContext(),
        force=True,
    )
    await res.serving.sync()
    assert outcome.final == "done" and outcome.filling is not None
    return outcome.filling


# Announces nothing: the tests read the records themselves.
quiet = BuildContext()


class Heard(BuildContext):
    """Records each part announced, and what PostgreSQL said then of the active version
    and of the builds row it reports to."""

    def __init__(self, pool: Any, build_id: str | None = None) -> None:
        super().__init__(pool, build_id)
        self.parts: list[int] = []
        self.active: list[int | None] = []
        self.stage: list[tuple[str, float]] = []
        self.users_when_activated: int | None = None

    async def lists_added(self, version: int, part: int) -> None:
        assert self.pool is not None
        self.parts.append(part)
        self.active.append(await builds.active_version(self.pool))
        if self.build_id is not None:
            row = await builds.get_build(self.pool, self.build_id)
            self.stage.append((row["stage"], row["progress"]))

    async def activated(self, version: int) -> None:
        assert self.pool is not None
        parts = await builds.lists_parts(self.pool, version)
        self.users_when_activated = sum(p["users"] for p in parts)


async def two_parts(res: Any, settings: Settings, built: Filling) -> Settings:
    """Parts of five users, and the first two of them ranked; the settings they used."""
    parted = with_index(settings, fill_part_users=5)
    for _ in range(2):
        assert await fill_part(res.pool, res.store, parted, built, quiet) == 5
    return parted


def with_index(settings: Settings, **fields: Any) -> Settings:
    return settings.model_copy(update={"index": settings.index.model_copy(update=fields)})


async def test_parts_are_served_as_they_land_and_answer_as_a_live_ranking(
    built: Filling,
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = app.state.application
    serving = res.serving
    served: IndexVersion = serving.current
    assert served.version == built.version and served.lists is not None
    assert served.lists.users == 0
    fans = [f"{g}-fan-{f}" for g in GENRES for f in range(3)]
    no_cache = {"Cache-Control": "no-cache"}
    live = {}
    for fan in fans:
        answer = await client.get(f"/api/v1/recommendations/{fan}?limit=6", headers=no_cache)
        live[fan] = answer.json()["items"]

    announce = BuildContext(redis=res.redis, namespace=settings.event_namespace)
    parted = with_index(settings, fill_part_users=5)
    ranked = await fill_lists(res.pool, res.store, parted, built, announce)
    assert ranked == 22
    records = await builds.lists_parts(res.pool, served.version)
    assert [r["part"] for r in records] == [1, 2, 3, 4, 5]
    assert sum(r["users"] for r in records) == 22
    keys = set(res.store.list(publish.prefix(served.version)))
    assert {publish.prefix(served.version) + r["name"] for r in records} <= keys
    # Each announcement folds its part in, in the process serving the version.
    await until(lambda: served.parts_read == {1, 2, 3, 4, 5})
    assert served.lists is not None and served.lists.users == 22

    calls = count_rankings(monkeypatch)
    for fan in fans:
        answer = await client.get(f"/api/v1/recommendations/{fan}?limit=6", headers=no_cache)
        body = answer.json()
        assert [i["item_id"] for i in body["items"]] == [i["item_id"] for i in live[fan]], fan
        assert [i["score"] for i in body["items"]] == pytest.approx(
            [i["score"] for i in live[fan]], abs=1e-5
        )
    assert calls == []  # every list was a lookup

    # A process that loads the version later reads every recorded part.
    later = await serving.prepare(served.version)
    assert later.lists is not None and later.lists.users == 0
    assert await serving.read_list_parts(later) == 5 and later.lists.users == 22


async def test_a_part_that_cannot_be_read_is_read_on_the_next_try_and_holds_up_no_other(
    built: Filling, app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.state.application

    assert (
        await fill_lists(res.pool, res.store, with_index(settings, fill_part_users=8), built, quiet)
        == 22
    )
    records = await builds.lists_parts(res.pool, built.version)
    second = publish.prefix(built.version) + records[1]["name"]
    good = res.store.get_bytes(second)
    res.store.put_bytes(second, b"not the part")
    (settings.index.data_dir / f"{built.version:010d}" / records[1]["name"]).unlink()

    fresh = await res.serving.prepare(built.version)
    assert await res.serving.read_list_parts(fresh) == 2
    # The other parts are served; the users of the broken one are ranked live meanwhile.
    assert fresh.parts_read == {1, 3} and fresh.lists is not None and fresh.lists.users == 14
    res.store.put_bytes(second, good)
    assert await res.serving.read_list_parts(fresh) == 1 and fresh.lists.users == 22
    # The store down stops a fold with its error (the next poll tries again).
    later = await res.serving.prepare(built.version)
    (settings.index.data_dir / f"{built.version:010d}" / records[0]["name"]).unlink()
    dead = S3Store(settings.s3.model_copy(update={"endpoint": "127.0.0.1:1"}))
    monkeypatch.setattr(res.serving, "store", dead)
    with pytest.raises(ObjectStoreUnavailable):
        await res.serving.read_list_parts(later)


async def test_ranking_stops_once_the_version_is_no_longer_the_one_to_rank_for(
    built: Filling, app: FastAPI, settings: Settings
) -> None:
    res = app.state.application

    class AskedForAnother(Heard):
        async def lists_added(self, version: int, part: int) -> None:
            await super().lists_added(version, part)
            if part == 2:  # a build is asked for meanwhile: its version will take this one's
                await builds.request_build(res.pool, "next", False, 600.0, 60.0)

    heard = AskedForAnother(res.pool)
    parted = with_index(settings, fill_part_users=5)
    assert await fill_lists(res.pool, res.store, parted, built, heard) == 10
    assert heard.parts == [1, 2]
    assert len(await builds.lists_parts(res.pool, built.version)) == 2

    # Nor past its time (checked before each part), nor for a version that is not active.
    await res.pool.execute("UPDATE builds SET state = 'failed'")
    await res.pool.execute("DELETE FROM version_lists")
    ticks = iter([0.0, 0.0, 0.0])  # the deadline, the loop's check, the first batch's
    assert (
        await fill_lists(
            res.pool, res.store, parted, built, heard, clock=lambda: next(ticks, 99_999.0)
        )
        == 5
    )
    await res.pool.execute("DELETE FROM version_lists")
    await res.pool.execute("DELETE FROM active_index")
    assert await fill_lists(res.pool, res.store, parted, built, heard) == 0


async def test_another_process_goes_on_where_the_parts_stopped(
    built: Filling, app: FastAPI, settings: Settings
) -> None:
    res = app.state.application
    parted = await two_parts(res, settings, built)
    # A worker restarted, or another one: the version loaded, its two parts folded in.
    again = await resume(res.pool, res.store, parted, quiet, built.version)
    assert again is not None and again.built.lists is not None
    assert again.built.lists.users == 10 and again.trend is not None
    assert await fill_lists(res.pool, res.store, parted, again, quiet) == 12
    records = await builds.lists_parts(res.pool, built.version)
    assert [r["part"] for r in records] == [1, 2, 3, 4, 5]
    assert await resume(res.pool, res.store, parted, quiet, built.version) is None
    # The first copy reads the parts the other ranked before it ranks: none is left.
    assert await fill_part(res.pool, res.store, parted, built, quiet) == 0
    assert built.built.parts_read == {1, 2, 3, 4, 5}
    assert len(await builds.lists_parts(res.pool, built.version)) == 5
    # The served version's lists are every user's, each ranked once.
    served = res.serving.current
    await res.serving.read_list_parts(served)
    assert served.lists.users == 22


async def test_one_process_at_a_time_ranks_a_versions_parts(
    built: Filling, app: FastAPI, settings: Settings
) -> None:
    res = app.state.application

    async with builds.fill_claim(res.pool, built.version) as first:
        async with builds.fill_claim(res.pool, built.version) as second:
            assert first and not second
        # Another process holds the claim: this one ranks nothing.
        assert await fill_part(res.pool, res.store, settings, built, quiet) == 0
    assert await fill_part(res.pool, res.store, settings, built, quiet) == 22


async def test_a_part_that_cannot_be_read_is_ranked_again(
    built: Filling, app: FastAPI, settings: Settings
) -> None:
    res = app.state.application
    parted = await two_parts(res, settings, built)
    second = (await builds.lists_parts(res.pool, built.version))[1]["name"]
    res.store.put_bytes(publish.prefix(built.version) + second, b"not the part")
    (settings.index.data_dir / f"{built.version:010d}" / second).unlink()
    again = await resume(res.pool, res.store, parted, quiet, built.version)
    assert again is not None and again.built.lists is not None
    assert again.built.lists.users == 5
    # Its five users are ranked again, with the twelve left.
    assert await fill_lists(res.pool, res.store, parted, again, quiet) == 17
    assert len(await builds.lists_parts(res.pool, built.version)) == 6


async def test_a_build_with_no_time_for_lists_ranks_them_all_before_it_goes_live(
    catalog: None,
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = app.state.application
    before = await build_now(app)
    # A build as a worker runs it: claimed, its stage and progress in its row. No list is
    # ranked within its precompute budget.
    request, _ = await builds.request_build(res.pool, "test", True, 600.0, 60.0)
    assert await builds.start_build(res.pool, request["build_id"]) is not None
    heard = Heard(res.pool, request["build_id"])
    no_time = with_index(settings, precompute_seconds=0.0, fill_part_users=5)
    outcome = await build_version(
        res.pool, res.store, make_encoder(settings.embedding.model), no_time, heard, force=True
    )
    assert outcome.final == "done" and outcome.version is not None and outcome.version != before
    manifest = (await builds.get_version(res.pool, outcome.version))["manifest"]
    assert manifest["precomputed"]["users"] == 0 and manifest["precomputed"]["left"] == 22

    # Every list was ranked, in parts, while the version before was still the active one;
    # the stage said so in the build's row, and the version went live with all of them.
    assert heard.stages.index("precomputing") < heard.stages.index(RANKING_LISTS)
    assert heard.stages.index(RANKING_LISTS) < heard.stages.index("activating")
    records = await builds.lists_parts(res.pool, outcome.version)
    assert [r["part"] for r in records] == heard.parts == [1, 2, 3, 4, 5]
    assert heard.active == [before] * 5
    assert [stage for stage, _ in heard.stage] == [RANKING_LISTS] * 5
    progress = [fraction for _, fraction in heard.stage]
    assert progress == sorted(progress) and progress[0] > 0.85 and progress[-1] <= 0.95
    assert heard.users_when_activated == 22
    assert await builds.active_version(res.pool) == outcome.version
    # Nothing is left for the workers.
    assert outcome.filling is None
    assert await resume(res.pool, res.store, no_time, quiet, outcome.version) is None

    # Served, every user with a history is a lookup.
    await res.serving.sync()
    served: IndexVersion = res.serving.current
    assert served.version == outcome.version and served.lists is not None
    assert served.lists.users == 22
    calls = count_rankings(monkeypatch)
    for user in [f"{g}-fan-{f}" for g in GENRES for f in range(3)] + ["viewer-0"]:
        answer = await client.get(
            f"/api/v1/recommendations/{user}", headers={"Cache-Control": "no-cache"}
        )
        assert answer.json()["index_version"] == outcome.version and answer.json()["items"]
    assert calls == []


async def test_what_is_left_after_fill_seconds_is_ranked_once_the_version_is_live(
    catalog: None, app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.state.application
    # Each part takes 70 s of the build's clock: with 100 s to rank lists before going live,
    # the build ranks two parts, and leaves the rest to the workers.
    offset = [0.0]
    real_time, real_part = pipeline.time, pipeline.fill_part

    async def slow_part(*args: Any, **kwargs: Any) -> int:
        ranked = await real_part(*args, **kwargs)
        offset[0] += 70.0
        return ranked

    monkeypatch.setattr(pipeline, "fill_part", slow_part)
    fake = SimpleNamespace(
        monotonic=lambda: real_time.monotonic() + offset[0],
        time=real_time.time,
        time_ns=real_time.time_ns,
    )
    monkeypatch.setattr(pipeline, "time", fake)
    budget = with_index(settings, precompute_seconds=0.0, fill_part_users=5, fill_seconds=100.0)
    heard = Heard(res.pool)
    outcome = await build_version(
        res.pool, res.store, make_encoder(settings.embedding.model), budget, heard, force=True
    )
    monkeypatch.undo()
    assert outcome.version is not None and outcome.filling is not None
    assert heard.parts == [1, 2] and heard.active == [None, None]
    assert heard.users_when_activated == 10
    # The workers go on from there once it is live.
    assert await fill_lists(res.pool, res.store, budget, outcome.filling, quiet) == 12
    records = await builds.lists_parts(res.pool, outcome.version)
    assert [r["part"] for r in records] == [1, 2, 3, 4, 5]


async def test_a_build_that_does_not_activate_ranks_no_part(
    catalog: None, app: FastAPI, settings: Settings
) -> None:
    res = app.state.application
    heard = Heard(res.pool)
    outcome = await build_version(
        res.pool,
        res.store,
        make_encoder(settings.embedding.model),
        with_index(settings, precompute_seconds=0.0),
        heard,
        force=True,
        activate=False,
    )
    assert outcome.final == "done" and outcome.version is not None and outcome.filling is None
    assert RANKING_LISTS not in heard.stages and heard.parts == []
    assert await builds.lists_parts(res.pool, outcome.version) == []
    assert await builds.active_version(res.pool) is None


async def test_a_worker_holds_the_version_from_part_to_part_or_loads_it(
    built: Filling, app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.state.application
    parted = with_index(settings, fill_part_users=5)
    loads: list[int] = []
    real_resume = lists.resume

    async def counted(*args: Any, **kwargs: Any) -> Filling | None:
        loads.append(1)
        return await real_resume(*args, **kwargs)

    monkeypatch.setattr(lists, "resume", counted)
    later = time.time() + 600
    # The worker that built the version holds it from its build.
    builder = Filler()
    builder.keep(built)
    part = {"until": later, "part_seconds": 300.0}
    assert await builder.rank_next(res.pool, res.store, parted, quiet, built.version, **part) == 5
    assert loads == [] and builder.filling is built
    # Another worker process loads it once, with the part ranked so far, and holds it.
    other = Filler()
    assert await other.rank_next(res.pool, res.store, parted, quiet, built.version, **part) == 5
    assert await other.rank_next(res.pool, res.store, parted, quiet, built.version, **part) == 5
    assert loads == [1] and other.filling is not None
    assert other.filling.built.parts_read == {1, 2, 3}
    # Past its time, a part holds no one.
    past = {"until": time.time() - 1, "part_seconds": 300.0}
    assert await other.rank_next(res.pool, res.store, parted, quiet, built.version, **past) == 0
