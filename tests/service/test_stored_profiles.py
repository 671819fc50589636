"""A stored profile's taste vector reads back exactly, in the packed form and the older one,
and a process of an older release reads the packed form as no vector rather than failing."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from service.profiles import _packed, parse
from storage.events import profile_key
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
    await app.state.resources.drain()
    raw = await redis.get(profile_key("packed"))
    written = orjson.loads(raw)
    assert written["vector"] is None  # what an older reader reads: no vector of its own
    assert isinstance(written["vector_f32"], str)
    version = app.state.resources.serving.current
    found = parse(raw, version, "packed")
    assert found is not None and found[0].vector is not None
    assert found[0].vector.shape == (version.item_vectors.shape[1],)
    assert found[0].vector.dtype == np.float32 and found[0].vector.any()
