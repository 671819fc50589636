"""Lists ranked at build time, or in parts after it, are the lists a live ranking gives the
same users."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from common.settings import Settings, load_settings
from common.snapshot import Snapshot
from indexing import ann, precompute, ranking
from indexing.artifacts import CorruptArtifact, IndexVersion, KeptLists, Part
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
    # Users of two interactions are below this cold-start rule: their lists are popular.
    index = settings.index.model_copy(update={"cold_start_min": 3})
    settings = settings.model_copy(update={"index": index})
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


@pytest.fixture(scope="module")
def searched(version: IndexVersion, settings: Settings) -> IndexVersion:
    """The same version with an HNSW item index, where a similar-items search is approximate
    (its beam is 16: on this graph some of the lists are not the exact ones). The index's
    own beam, which the other searches use, is wide enough to find every item exactly."""
    index = settings.index.model_copy(
        update={"exact_below": 10, "hnsw_ef_search": 512, "hnsw_ef_construction": 80}
    )
    vectors = np.ascontiguousarray(version.item_vectors)
    beam = {"item_index": {"similar_ef_search": 16}}
    return replace(version, item_index=ann.build(vectors, index), manifest=beam)


@pytest.mark.parametrize("which", ["exact", "hnsw"])
def test_each_items_nearest_are_what_a_live_search_finds(
    which: str, version: IndexVersion, searched: IndexVersion, settings: Settings
) -> None:
    chosen = version if which == "exact" else searched
    small = settings.model_copy(
        update={"index": settings.index.model_copy(update={"similar_depth": 12})}
    )
    nearest = precompute.nearest_items(chosen, small, seconds=60.0)
    assert nearest.items == ITEMS and nearest.depth == 12
    for row in range(ITEMS):
        kept = nearest.get(row)
        assert kept is not None
        rows, scores = kept
        assert row not in rows.tolist() and len(rows) == 12
        # The API's own search for fewer results (k within the beam): the same head.
        for limit in (1, 5, 12):
            live = ranking.similar_items(
                chosen, chosen.item_vectors[row], limit=limit, among=None, excluded={row}
            )
            assert rows[:limit].tolist() == live.rows.tolist()
            np.testing.assert_allclose(scores[:limit], live.scores, rtol=1e-6)
    if which == "hnsw":  # the search is approximate here: some lists are not the exact ones
        exact = precompute.nearest_items(version, small, seconds=60.0)
        assert not np.array_equal(exact.rows, nearest.rows)
        wide = replace(searched, manifest={})  # a version from before the beam was recorded
        for row in range(ITEMS):  # a text query searches with the index's own (wide) beam
            query = searched.item_vectors[row]
            text = ranking.similar_items(
                searched, query, limit=13, among=None, excluded=(), text=True
            )
            assert text.rows[1:].tolist() == exact.get(row)[0].tolist()  # type: ignore[index]
        assert np.array_equal(precompute.nearest_items(wide, small, seconds=60.0).rows, exact.rows)


def test_no_time_finds_no_nearest_and_the_most_popular_come_first(
    version: IndexVersion, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert precompute.nearest_items(version, settings, seconds=0.0).items == 0
    ticks = iter([0.0, 0.0, 0.0])  # past the deadline after two batches of 16 items
    monkeypatch.setattr(precompute, "ITEM_BATCH", 16)
    nearest = precompute.nearest_items(
        version, settings, seconds=1.0, clock=lambda: next(ticks, 10.0)
    )
    kept = [r for r in range(ITEMS) if nearest.get(r) is not None]
    assert len(kept) == 32
    assert set(kept) == set(version.popular_rows[:32].tolist())


def test_parts_ranked_after_the_build_give_each_user_the_list_the_build_would_have(
    version: IndexVersion, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    whole = precompute.rank_users(version, settings, seconds=60.0, threads=2)
    # A build with time for one batch of four users: the most active.
    ticks = iter([0.0, 0.0])
    monkeypatch.setattr(precompute, "BATCH", 4)
    head = precompute.rank_users(version, settings, seconds=1.0, clock=lambda: next(ticks, 9.0))
    assert head.users == 4
    served = replace(version, lists=head)
    left = precompute.unranked(served)
    assert len(left) == USERS - 4 and not set(left.tolist()) & {
        u for u in range(USERS) if head.get(u) is not None
    }
    activity = np.diff(version.history_indptr)
    assert (np.diff(activity[left]) <= 0).all()  # the most active first

    # Two parts, and a third naming a user the build ranked, and another user, with lists
    # of their own: the build's list stays, and a user already in a part keeps that list.
    first = precompute.rank_part(served, settings, left[:20], threads=2)
    second = precompute.rank_part(served, settings, left[20:], trending=None)
    kept_by_build = next(u for u in range(USERS) if head.get(u) is not None)
    other = Part(
        np.array([kept_by_build, left[0]], dtype=np.int64),
        np.array([0, 2, 4], dtype=np.int64),
        np.array([7, 8, 9, 10], dtype=np.int32),
        np.ones(4, dtype=np.float32),
        np.zeros(2, dtype=bool),
    )
    saved = first.save(tmp_path / "lists-0001.npz")
    first = Part.load(tmp_path / "lists-0001.npz", saved["sha256"])
    lists = head.with_part(first)
    assert lists.users == 24 and len(precompute.unranked(replace(version, lists=lists))) == 16
    lists = lists.with_part(second).with_part(other)
    assert lists.users == USERS and len(precompute.unranked(replace(version, lists=lists))) == 0
    assert lists.part_of is not None and lists.part_of[kept_by_build] == -1
    assert lists.part_of[left[0]] == 0
    for user in range(USERS):
        found, expected = lists.get(user), whole.get(user)
        assert found is not None and expected is not None
        assert found[0].tolist() == expected[0].tolist() and found[2] == expected[2]
        np.testing.assert_allclose(found[1], expected[1], rtol=1e-6)
    # A part stops where `late` says: it holds the users ranked by then.
    ticks = iter([False, True])
    cut = precompute.rank_part(served, settings, left, late=lambda: next(ticks, True))
    assert cut.users.tolist() == left[:4].tolist() and len(cut.indptr) == 5

    (tmp_path / "lists-0001.npz").write_bytes(b"not the part")
    with pytest.raises(CorruptArtifact):
        Part.load(tmp_path / "lists-0001.npz", saved["sha256"])


def test_a_user_ranked_with_an_empty_list_is_ranked_live_and_not_ranked_again(
    version: IndexVersion, settings: Settings
) -> None:
    lists = KeptLists.empty(USERS, precompute.ranked_with(version, settings))
    empty = Part(
        np.array([3], dtype=np.int64),
        np.array([0, 0], dtype=np.int64),
        np.zeros(0, dtype=np.int32),
        np.zeros(0, dtype=np.float32),
        np.zeros(1, dtype=bool),
    )
    lists = lists.with_part(empty)
    assert lists.get(3) is None  # ranked live
    assert 3 not in precompute.unranked(replace(version, lists=lists)).tolist()
