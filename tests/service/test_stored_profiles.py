"""A stored profile's taste vector reads back exactly, in the packed form and the older one,
and a process of an older release reads the packed form as no vector rather than failing.
A process reads a profile from Redis only for a user who has one newer than its version."""

from __future__ import annotations

import time

import httpx
import numpy as np
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from indexing.profiles import Profile
from service import profiles
from service.profiles import READ_BYTES, READ_SECONDS, ProfileStamps, Read, _packed, parse
from service.serving import Serving
from storage import profiles as stored_profiles
from storage.events import SUBSCRIBED, noted_key, profile_key
from tests.helpers import until
from tests.service.test_recommendations import served

__all__ = ["served"]


def stored(vector: object, packed: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "at": 100.0,
            "version": None,
            "count": 2,
            "seen": ["a", "b"],
            "negative": [],
            "liked": ["b", "a"],
            "evidence": [1.0, 0.5],
            "vector": vector,
            "vector_f32": packed,
        }
    )


def test_a_packed_vector_reads_back_bit_for_bit() -> None:
    vector = np.random.default_rng(3).standard_normal(384).astype(np.float32)
    vector[:3] = [np.float32(1e-30), np.float32(-0.0), np.float32(3.4e38)]
    found = parse(stored(None, _packed(vector)), None, "u")
    assert found is not None
    profile, stamp = found
    assert stamp == 100.0 and profile.vector is not None
    assert profile.vector.dtype == np.float32 and profile.vector.flags.writeable
    assert profile.vector.tobytes() == vector.tobytes()
    assert profile.liked == ("b", "a") and profile.seen == frozenset({"a", "b"})


def test_a_profile_stored_with_a_list_of_numbers_still_reads() -> None:
    vector = np.linspace(-1, 1, 8, dtype=np.float32)
    found = parse(stored(vector.tolist()), None, "u")
    assert found is not None and found[0].vector is not None
    assert np.array_equal(found[0].vector, vector)
    empty = parse(stored(None), None, "u")
    assert empty is not None and empty[0].vector is None


async def test_a_refreshed_profile_is_stored_packed_and_reads_back(
    client: httpx.AsyncClient, app: FastAPI, redis: Redis, served: int
) -> None:
    for k in range(3):
        like = {"user_id": "packed", "item_id": f"comedy-{k}", "type": "like"}
        assert (await client.post("/api/v1/interactions", json=like)).status_code == 202
    await app.state.application.drain()
    raw = await redis.get(profile_key("packed"))
    written = orjson.loads(raw)
    assert written["vector"] is None  # what an older reader reads: no vector of its own
    assert isinstance(written["vector_f32"], str)
    version = app.state.application.serving.current
    found = parse(raw, version, "packed")
    assert found is not None and found[0].vector is not None
    assert found[0].vector.shape == (version.item_vectors.shape[1],)
    assert found[0].vector.dtype == np.float32 and found[0].vector.any()


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The user of each read of a stored profile from Redis from now on."""
    reads: list[str] = []
    real = stored_profiles.load_with_list

    async def counted(redis: Redis, user_id: str) -> tuple[bytes | None, bytes | None]:
        reads.append(user_id)
        return await real(redis, user_id)

    monkeypatch.setattr(stored_profiles, "load_with_list", counted)
    return reads


async def listed(client: httpx.AsyncClient, user: str) -> list[str]:
    """The user's first eight items, ranked afresh (no cached answer)."""
    answer = await client.get(
        f"/api/v1/recommendations/{user}?limit=8", headers={"Cache-Control": "no-cache"}
    )
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]]


async def watched(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The app's knowledge of stored profiles read, and its reads of Redis counted."""
    res = app.state.application
    await res.serving.read_all_stamps()
    assert res.serving.profile_stamps.since == res.serving.current.data_as_of
    return count_reads(monkeypatch)


async def like(client: httpx.AsyncClient, app: FastAPI, user: str, item: str) -> None:
    body = {"user_id": user, "item_id": item, "type": "like"}
    assert (await client.post("/api/v1/interactions", json=body)).status_code == 202
    await app.state.application.drain()


async def test_an_idle_user_is_answered_without_reading_redis_until_they_act(
    client: httpx.AsyncClient, app: FastAPI, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = await watched(app, monkeypatch)
    before = await listed(client, "horror-fan-0")
    assert reads == []
    # Their top item, once liked, is seen: it leaves the list.
    await like(client, app, "horror-fan-0", before[0])
    after = await listed(client, "horror-fan-0")
    assert reads == ["horror-fan-0"] and before[0] not in after
    # Their profile and the list ranked ahead from it, once read, are held until they act.
    assert await listed(client, "horror-fan-0") == after
    assert reads == ["horror-fan-0"]
    await like(client, app, "horror-fan-0", after[0])
    later = await listed(client, "horror-fan-0")
    assert reads == ["horror-fan-0", "horror-fan-0"] and after[0] not in later
    # Other idle users still read nothing.
    await listed(client, "comedy-fan-0")
    assert reads == ["horror-fan-0", "horror-fan-0"]


async def test_a_profile_another_process_stores_is_heard_and_read(
    client: httpx.AsyncClient, app: FastAPI, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.state.application
    reads = await watched(app, monkeypatch)
    before = await listed(client, "space-fan-0")
    assert reads == []
    # Another process's refresh: only its announcement tells this one.
    await profiles.refresh(res.pool, res.redis, res.settings, res.serving.current, ["space-fan-0"])
    await until(lambda: "space-fan-0" in res.serving.profile_stamps.stamps)
    assert await listed(client, "space-fan-0") == before  # nothing new in that profile
    assert reads == ["space-fan-0"]
    # That profile says what the version says: the build's list answers with no more reads.
    assert await listed(client, "space-fan-0") == before
    assert reads == ["space-fan-0"]


async def test_a_process_that_starts_later_reads_who_stored_a_profile(
    client: httpx.AsyncClient, app: FastAPI, served: int
) -> None:
    res = app.state.application
    version = res.serving.current
    await profiles.refresh(res.pool, res.redis, res.settings, version, ["western-fan-1"])
    other = Serving(res.settings, res.pool, res.redis, res.store)
    await other.start()
    try:
        await until(lambda: other.profile_stamps.since is not None)
        assert other.profile_stamps.since == version.data_as_of
        assert not other.profile_stamps.none_stored_since("western-fan-1", version.data_as_of)
        assert other.profile_stamps.none_stored_since("western-fan-0", version.data_as_of)
    finally:
        await other.stop()


def test_what_is_known_of_stored_profiles() -> None:
    stored = ProfileStamps()
    assert not stored.none_stored_since("a", 10.0)  # nothing read yet: unknown
    stored.record(["a"], 12.0)  # heard while the notes were being read
    stored.read_all({"a": 11.0, "b": 15.0, "c": 9.5}, 9.0)
    assert stored.stamps == {"a": 12.0, "b": 15.0, "c": 9.5}
    assert stored.none_stored_since("c", 10.0) and stored.none_stored_since("d", 10.0)
    assert not stored.none_stored_since("a", 10.0) and not stored.none_stored_since("b", 10.0)
    assert not stored.none_stored_since("d", 8.0)  # before what was read: unknown
    stored.read_all({}, 10.0)
    assert "c" not in stored.stamps  # older than any held version's snapshot
    stored.lost()
    assert not stored.none_stored_since("d", 10.0)


def test_held_reads_are_of_the_newest_profile_and_bounded() -> None:
    stored = ProfileStamps(max_bytes=3 * READ_BYTES)
    read = Read(Profile(count=1), 11.0, b"[]")
    stored.remember_read(1, "a", read)
    assert stored.remembered_read(1, "a") is None  # the channel is not read yet: nothing is held
    stored.read_all({"a": 11.0, "b": 12.0, "c": 13.0}, 10.0)
    stored.remember_read(1, "a", Read(Profile(count=1), 10.5, b"[]"))  # not their newest
    assert stored.remembered_read(1, "a") is None
    stored.remember_read(1, "a", read)
    assert (
        stored.remembered_read(1, "a") is read and stored.remembered_read(2, "a") is None
    )  # another version
    stored.remember_read(1, "a", read)
    stored.remember_read(1, "b", Read(Profile(count=1), 12.0, b"[]"))
    stored.remember_read(1, "c", Read(Profile(count=1), 13.0, b"[]"))
    assert (
        stored.bytes <= 3 * READ_BYTES and stored.remembered_read(1, "a") is None
    )  # the oldest went
    assert stored.remembered_read(1, "b") is not None
    stored.record(["b"], 14.0)  # a newer profile
    assert stored.remembered_read(1, "b") is None and stored.remembered_read(1, "c") is not None
    stored.lost()
    assert stored.remembered_read(1, "c") is None and stored.bytes == 0


def test_a_stored_profile_that_says_what_the_version_says() -> None:
    stored = ProfileStamps()
    stored.read_all({"a": 11.0, "b": 12.0}, 10.0)
    assert stored.unchanged_since_build("c", 1, 10.0)  # none stored since the snapshot
    assert not stored.unchanged_since_build("a", 1, 10.0)
    stored.record_same_as_build(1, "a", 11.0)
    stored.record_same_as_build(1, "b", 11.5)  # not their newest
    assert stored.unchanged_since_build("a", 1, 10.0) and not stored.unchanged_since_build(
        "a", 2, 10.0
    )
    assert not stored.unchanged_since_build("b", 1, 10.0)
    stored.record(["a"], 13.0)  # they acted
    assert not stored.unchanged_since_build("a", 1, 10.0)
    stored.record_same_as_build(1, "b", 12.0)
    stored.lost()
    assert not stored.unchanged_since_build("b", 1, 10.0) and not stored.unchanged_since_build(
        "c", 1, 10.0
    )


def test_a_held_read_is_read_again_after_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = ProfileStamps(max_bytes=10 * READ_BYTES)
    stored.read_all({"a": 11.0}, 10.0)
    read = Read(Profile(count=1), 11.0, b"[]")
    now = [100.0]
    monkeypatch.setattr(profiles.time, "monotonic", lambda: now[0])
    stored.remember_read(1, "a", read)
    now[0] += READ_SECONDS - 1
    assert stored.remembered_read(1, "a") is read
    now[0] += 2
    assert stored.remembered_read(1, "a") is None and stored.bytes == 0


async def test_profiles_stored_before_any_note_are_never_taken_for_none(
    client: httpx.AsyncClient, app: FastAPI, redis: Redis
) -> None:
    assert await stored_profiles.stamped_since(redis) == 0.0  # nothing stored: from the start
    await redis.delete(noted_key())
    await redis.set(profile_key("older"), b"{}")  # stored by a release that noted nothing
    before = time.time()
    noted = await stored_profiles.stamped_since(redis)
    assert before <= noted <= time.time()
    assert await stored_profiles.stamped_since(redis) == noted  # the first to ask decides


async def test_a_version_older_than_the_notes_reads_every_profile(
    client: httpx.AsyncClient, app: FastAPI, served: int, redis: Redis
) -> None:
    serving = app.state.application.serving
    version = serving.current
    await redis.set(noted_key(), repr(version.data_as_of + 60))  # noted only since then
    await serving.read_all_stamps()
    assert serving.profile_stamps.since == version.data_as_of + 60
    assert not serving.profile_stamps.unchanged_since_build(
        "horror-fan-0", version.version, version.data_as_of
    )


async def test_each_subscription_reads_the_notes_afresh(
    client: httpx.AsyncClient, app: FastAPI, served: int
) -> None:
    res = app.state.application
    serving = res.serving
    await serving.read_all_stamps()
    serving.profile_stamps.record(["nobody-stored-this"], 1e12)
    # Announcements may have been missed while the client reconnected on its own.
    await serving._handle({"type": SUBSCRIBED, "namespace": res.settings.event_namespace})
    assert "nobody-stored-this" not in serving.profile_stamps.stamps
    assert serving.profile_stamps.since == serving.current.data_as_of
