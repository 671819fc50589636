"""Lists ranked at build time are the lists a live ranking gives the same users."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from common.settings import Settings, load_settings
from common.snapshot import Snapshot
from indexing import precompute, ranking
from indexing.artifacts import IndexVersion
from indexing.build import assemble

ITEMS, USERS, DIM = 120, 40, 8


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def version(settings: Settings) -> IndexVersion:
    """40 users with 1 to 12 likes and a dislike or two, over 120 items in 4 clusters."""
    rng = np.random.default_rng(5)
    cluster = np.arange(ITEMS) % 4
    vectors = 0.3 * rng.standard_normal((ITEMS, DIM)).astype(np.float32)
    vectors[np.arange(ITEMS), cluster] += 1.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users, items, kinds = [], [], []
    for user in range(USERS):
        mine = np.flatnonzero(cluster == user % 4)
        for item in rng.choice(mine, 1 + user % 12, replace=False):
            users.append(user)
            items.append(int(item))
            kinds.append("like")
        users.append(user)
        items.append(int(rng.integers(ITEMS)))
        kinds.append("dislike")
    n = len(users)
    snapshot = Snapshot(
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        item_ids=[f"i{k}" for k in range(ITEMS)],
        titles=[f"Item {k}" for k in range(ITEMS)],
        categories=[f"c{c}" for c in cluster],
        published=np.full(ITEMS, np.nan),
        item_vectors=vectors,
        user_ids=[f"u{k}" for k in range(USERS)],
        user_rows=np.array(users, dtype=np.int64),
        item_rows=np.array(items, dtype=np.int64),
        kinds=kinds,
        values=[None] * n,
        times=1.7e9 + 60.0 * np.arange(n, dtype=np.float64),
    )
    built = assemble(snapshot, settings)
    built.manifest = {"version": 1, "data_as_of_epoch": snapshot.as_of.timestamp()}
    return built


def test_each_kept_list_is_the_live_ranking_cut_at_its_depth(
    version: IndexVersion, settings: Settings
) -> None:
    lists = precompute.rank_users(version, settings, seconds=60.0, threads=2)
    assert lists.users == USERS
    depth = settings.index.precompute_depth
    strategies = set()
    for user, user_id in enumerate(version.user_ids):
        # As the API ranks: the whole depth it pages through, of which the head is kept.
        live = ranking.recommend(
            version,
            ranking.profile_of(version, user_id),
            version.ranking(settings.ranking),
            depth=settings.index.ranking_depth,
            cold_start_min=settings.index.cold_start_min,
        )
        kept = lists.get(user)
        assert kept is not None
        rows, scores, strategy = kept
        assert rows.tolist() == live.rows[:depth].tolist()
        np.testing.assert_allclose(scores, live.scores[:depth], rtol=1e-6)
        assert strategy == live.strategy
        strategies.add(strategy)
    # One like is below the cold-start rule's count: those users' lists are the popular one.
    assert strategies == {"hybrid", "popular"}


def test_no_time_keeps_no_list_and_the_most_active_come_first(
    version: IndexVersion, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert precompute.rank_users(version, settings, seconds=0.0).users == 0
    # A clock that passes the deadline after two batches of four users.
    ticks = iter([0.0, 0.0, 0.0])
    monkeypatch.setattr(precompute, "BATCH", 4)
    lists = precompute.rank_users(version, settings, seconds=1.0, clock=lambda: next(ticks, 10.0))
    kept = [u for u in range(USERS) if lists.get(u) is not None]
    assert len(kept) == 8
    activity = np.diff(version.history_indptr)
    assert activity[kept].min() >= activity[[u for u in range(USERS) if u not in kept]].max()


def test_the_lists_say_what_they_were_ranked_with(
    version: IndexVersion, settings: Settings
) -> None:
    lists = precompute.rank_users(version, settings, seconds=60.0)
    assert lists.ranked_with == precompute.ranked_with(version, settings)
    other = settings.model_copy(
        update={"ranking": settings.ranking.model_copy(update={"mmr_lambda": 0.5})}
    )
    assert lists.ranked_with != precompute.ranked_with(version, other)
