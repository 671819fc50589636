"""What a build makes of a snapshot, besides the models (tests/indexing/test_tuning.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np
import pytest

from common.settings import load_settings
from common.snapshot import Snapshot
from indexing import build
from indexing.artifacts import IndexVersion

ITEMS, USERS, DIM = 60, 30, 8


def snapshot() -> Snapshot:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((ITEMS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users = np.repeat(np.arange(USERS), 8)
    items = (users * 7 + np.tile(np.arange(8), USERS) * 3) % ITEMS
    n = len(users)
    return Snapshot(
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        item_ids=[f"i{k}" for k in range(ITEMS)],
        titles=[f"Item {k}" for k in range(ITEMS)],
        categories=[None] * ITEMS,
        published=np.full(ITEMS, np.nan),
        item_vectors=vectors,
        user_ids=[f"u{k}" for k in range(USERS)],
        user_rows=users.astype(np.int64),
        item_rows=items.astype(np.int64),
        kinds=["view"] * n,
        values=[None] * n,
        times=1.7e9 + 60.0 * np.arange(n, dtype=np.float64),
    )


def test_only_the_served_version_builds_a_graph_over_the_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    settings = settings.model_copy(
        update={
            "index": settings.index.model_copy(
                update={"exact_below": 10, "tune_seconds": 0.5, "evaluate_users": 30}
            )
        }
    )
    assembled: list[IndexVersion] = []
    assemble = build.assemble

    def recording(*args: Any, **kwargs: Any) -> IndexVersion:
        version = assemble(*args, **kwargs)
        assembled.append(version)
        return version

    monkeypatch.setattr(build, "assemble", recording)
    served, _ = build.fit(snapshot(), settings)
    tuning_split, final = assembled
    assert final is served
    assert isinstance(served.user_index, faiss.IndexHNSWFlat)
    assert isinstance(tuning_split.user_index, faiss.IndexFlatIP)
    # Both hold the users' vectors all the same.
    assert tuning_split.user_index.ntotal == served.user_index.ntotal == USERS
    assert isinstance(served.item_index, faiss.IndexHNSWFlat)
    assert tuning_split.item_index is served.item_index
