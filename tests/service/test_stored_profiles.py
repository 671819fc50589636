"""A stored profile's taste vector reads back exactly, in the packed form and the older one."""

from __future__ import annotations

import numpy as np
import orjson

from service.profiles import _packed, parse


def stored(vector: object) -> bytes:
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
        }
    )


def test_a_packed_vector_reads_back_bit_for_bit() -> None:
    vector = np.random.default_rng(3).standard_normal(384).astype(np.float32)
    vector[:3] = [np.float32(1e-30), np.float32(-0.0), np.float32(3.4e38)]
    found = parse(stored(_packed(vector)), None, "u")
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
