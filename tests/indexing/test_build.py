"""What a build makes of a snapshot, besides the models (tests/indexing/test_tuning.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np
import pytest

from common.settings import Settings, load_settings
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
    [(_, tuning_split), (_, final)], served, _ = fitted(monkeypatch, judged_users=30)
    assert final is served
    assert isinstance(served.user_index, faiss.IndexHNSWFlat)
    assert isinstance(tuning_split.user_index, faiss.IndexFlatIP)
    # Both hold the users' vectors all the same.
    assert tuning_split.user_index.ntotal == served.user_index.ntotal == USERS
    assert isinstance(served.item_index, faiss.IndexHNSWFlat)
    assert tuning_split.item_index is served.item_index


def small_settings(**index: Any) -> Settings:
    """The defaults with a small exact threshold and a short tuning, for fits on snapshot()."""
    settings = load_settings()
    changed = {"exact_below": 10, "tune_seconds": 0.5, **index}
    return settings.model_copy(update={"index": settings.index.model_copy(update=changed)})


def fitted(
    monkeypatch: pytest.MonkeyPatch, judged_users: int
) -> tuple[list[tuple[Snapshot, IndexVersion]], IndexVersion, Any]:
    """A fit over snapshot() with `judged_users` judged, and each (part, version) assembled."""
    settings = small_settings(evaluate_users=judged_users)
    assembled: list[tuple[Snapshot, IndexVersion]] = []
    assemble = build.assemble

    def recording(part: Snapshot, *args: Any, **kwargs: Any) -> IndexVersion:
        version = assemble(part, *args, **kwargs)
        assembled.append((part, version))
        return version

    monkeypatch.setattr(build, "assemble", recording)
    served, tuned = build.fit(snapshot(), settings)
    return assembled, served, tuned


def test_where_few_are_judged_the_models_fitted_for_tuning_are_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 30 users with 8 interactions each, 2 of them held out: one judged user's are 0.8%.
    [(split, tuning_split), (whole, final)], served, tuned = fitted(monkeypatch, judged_users=1)
    assert final is served
    assert len(whole.user_rows) == USERS * 8
    assert len(split.user_rows) == USERS * 8 - 2  # only the judged user's newest held out
    assert tuned.models_lack == 2
    assert final.collaborative is tuning_split.collaborative is tuned.models
    # Everything else the served version holds comes from all the data.
    assert final.history_indptr[-1] == len(set(zip(whole.user_rows, whole.item_rows, strict=True)))
    assert final.popularity.sum() > tuning_split.popularity.sum()


def test_where_the_holdout_is_a_large_share_the_models_are_fitted_again_on_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every user judged: a quarter of the interactions held out.
    [(split, tuning_split), (whole, final)], _, tuned = fitted(monkeypatch, USERS)
    assert len(split.user_rows) == USERS * 6 and len(whole.user_rows) == USERS * 8
    assert tuned.models is None and tuned.models_lack == 0
    assert final.collaborative is not tuning_split.collaborative
    # The refit learnt from the held-out pairs too.
    assert final.collaborative is not None and tuning_split.collaborative is not None
    assert final.collaborative.neighbours.nnz > tuning_split.collaborative.neighbours.nnz


def test_the_active_configuration_is_judged_on_the_same_users_and_changes_nothing_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gate's reference refits what the active version chose otherwise (EASE's lambda
    here) on the build's own split, scores the same users, and leaves the served models."""
    [(_, tuning_split), (_, final)], _, tuned = fitted(monkeypatch, USERS)
    active = {
        "collaborative": {"ease_lambda": 1e6},
        "ranking": {"content_weight": 3.0, "ease_weight": 0.0},
    }
    settings = small_settings(evaluate_users=USERS)
    served, judged = build.fit(snapshot(), settings, active=active)
    assert judged.reference["refitted"] == ["ease"] and judged.reference["kept"] == []
    per_user = judged.per_user
    assert set(per_user) == {"hybrid", "popular", "reference"}
    assert len(per_user["reference"]) == len(per_user["hybrid"]) == len(per_user["popular"])
    # What is served is what the search chose, not the reference's models: the same as a
    # build with no version active.
    assert served.collaborative is not None and final.collaborative is not None
    assert (served.collaborative.ease != final.collaborative.ease).nnz == 0
    assert tuned.per_user.keys() == {"hybrid", "popular"}
    assert tuning_split.collaborative is not None
