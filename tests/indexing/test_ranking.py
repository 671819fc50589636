"""Ranking on data with a known right answer: two orthogonal genres, users who like one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from common.settings import IndexSettings, RankingSettings
from indexing import ann
from indexing.artifacts import IndexVersion
from indexing.ranking import (
    Profile,
    Ranked,
    blend_for,
    excluded_rows,
    popular,
    profile_of,
    recommend,
    similar_items,
    similar_users,
)
from indexing.subsets import Subset

DIM = 8


def vectors(n: int, axis: int, rng: np.random.Generator) -> np.ndarray:
    base = np.zeros((n, DIM), dtype=np.float32)
    base[:, axis] = 1.0
    noisy = base + 0.1 * rng.standard_normal((n, DIM)).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def within(version: IndexVersion, category: str | None) -> Subset | None:
    """The category's rows, as the API keeps a list to them (none for an unknown one)."""
    if category is None:
        return None
    found = version.in_category(category)
    return found or Subset(np.zeros(len(version.item_ids), dtype=bool), "none")


@pytest.fixture(scope="module", params=[1_000_000, 1])
def version(request: pytest.FixtureRequest) -> IndexVersion:
    """Items a0..a9 near axis 0, b0..b9 near axis 1; user `fan-a` liked a0..a2, `fan-b` b0.
    Parametrised over exact and HNSW indexes (exact_below huge, then 1)."""
    rng = np.random.default_rng(3)
    items = np.vstack([vectors(10, 0, rng), vectors(10, 1, rng)])
    ids = [f"a{n}" for n in range(10)] + [f"b{n}" for n in range(10)]
    settings = IndexSettings(exact_below=request.param)
    users = np.vstack([items[:3].mean(axis=0), items[10:11].mean(axis=0)])
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    return IndexVersion(
        manifest={"version": 1, "data_as_of_epoch": 0.0},
        item_ids=ids,
        item_titles=[f"Title {i}" for i in ids],
        item_index=ann.build(items, settings),
        category_names=["A", "B"],
        item_category=np.array([0] * 10 + [1] * 10, dtype=np.int32),
        popularity=np.arange(20, dtype=np.float32)[::-1].copy(),  # a0 most popular
        user_ids=["fan-a", "fan-b"],
        user_index=ann.build(users.astype(np.float32), settings),
        history_indptr=np.array([0, 3, 4], dtype=np.int64),
        history_items=np.array([0, 1, 2, 10], dtype=np.int32),
        history_weights=np.array([2, 2, -2, 2], dtype=np.float32),
    )


def rank(version: IndexVersion, profile: Profile, **options: Any) -> Ranked:
    return recommend(version, profile, RankingSettings(), **options)


def ids(version: IndexVersion, rows: np.ndarray) -> list[str]:
    return [version.item_ids[r] for r in rows]


def test_a_fan_gets_the_rest_of_their_genre_first(version: IndexVersion) -> None:
    ranked = rank(version, profile_of(version, "fan-a"), depth=20, cold_start_min=1)
    assert ranked.strategy == "hybrid"
    top = ids(version, ranked.rows[:7])
    assert sorted(top) == [f"a{n}" for n in range(3, 10)]
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)


def test_seen_items_are_left_out_unless_asked_but_negative_ones_always(
    version: IndexVersion,
) -> None:
    profile = profile_of(version, "fan-a")
    assert profile.negative == {"a2"}
    default = ids(version, rank(version, profile, depth=20, cold_start_min=1).rows)
    assert not {"a0", "a1", "a2"} & set(default)
    everything = ids(
        version, rank(version, profile, depth=20, cold_start_min=1, exclude_seen=False).rows
    )
    assert {"a0", "a1"} <= set(everything) and "a2" not in everything


def test_deleted_items_never_appear(version: IndexVersion) -> None:
    deleted = {version.item_row["a5"], version.item_row["b5"]}
    for profile in (profile_of(version, "fan-a"), Profile()):
        rows = rank(version, profile, depth=20, cold_start_min=1, deleted=deleted).rows
        assert not deleted & set(rows.tolist())


def test_category_filter_keeps_one_category(version: IndexVersion) -> None:
    ranked = rank(
        version,
        profile_of(version, "fan-a"),
        depth=20,
        cold_start_min=1,
        among=within(version, "B"),
    )
    assert ids(version, ranked.rows) and all(i.startswith("b") for i in ids(version, ranked.rows))


def test_pages_of_one_list_never_overlap(version: IndexVersion) -> None:
    ranked = rank(version, profile_of(version, "fan-a"), depth=20, cold_start_min=1)
    first, second = ranked.rows[:5], ranked.rows[5:10]
    assert len(second) == 5 and not set(first.tolist()) & set(second.tolist())
    again = rank(version, profile_of(version, "fan-a"), depth=20, cold_start_min=1)
    assert again.rows.tolist() == ranked.rows.tolist()


def test_too_little_history_gets_popular_items(version: IndexVersion) -> None:
    ranked = rank(version, profile_of(version, "fan-b"), depth=5, cold_start_min=2)
    assert ranked.strategy == "popular"
    assert ids(version, ranked.rows) == ["a0", "a1", "a2", "a3", "a4"]
    unknown = rank(version, Profile(), depth=3, cold_start_min=0)
    assert unknown.strategy == "popular"


def test_popular_respects_exclusions(version: IndexVersion) -> None:
    ranked = popular(version, depth=3, among=None, excluded={0, 1})
    assert ids(version, ranked.rows) == ["a2", "a3", "a4"]


def test_popular_is_the_engaged_catalog_by_popularity_with_ties_by_row(
    version: IndexVersion,
) -> None:
    """Items no one engaged with have no place in it: a list they would end is left short,
    for the API to fill from live popularity."""
    rng = np.random.default_rng(5)
    tied = replace(version, popularity=rng.integers(0, 4, 20).astype(np.float32))
    excluded = {1, 4, 7, 12}
    for category, inside in ((None, range(20)), ("A", range(10)), ("B", range(10, 20))):
        for depth in (1, 5, 20, 50):
            ranked = popular(tied, depth=depth, among=within(tied, category), excluded=excluded)
            allowed = [r for r in inside if r not in excluded and tied.popularity[r] > 0]
            expected = sorted(allowed, key=lambda r: (-tied.popularity[r], r))[:depth]
            assert ranked.rows.tolist() == expected
            assert ranked.scores.tolist() == tied.popularity[expected].tolist()
            assert ranked.strategy == "popular"
    assert len(popular(tied, depth=5, among=within(tied, "no such"), excluded=()).rows) == 0


# A category is scanned below ann.SCAN_BELOW rows and searched with a selector above it.
BOTH_WAYS = pytest.mark.parametrize("scan_below", [ann.SCAN_BELOW, 1])


@BOTH_WAYS
def test_similar_items_in_a_category_are_its_nearest(
    version: IndexVersion, monkeypatch: pytest.MonkeyPatch, scan_below: int
) -> None:
    monkeypatch.setattr(ann, "SCAN_BELOW", scan_below)
    query = version.item_vectors[version.item_row["a0"]]
    for category, inside in (("A", range(10)), ("B", range(10, 20))):
        found = similar_items(
            version, query, limit=4, among=within(version, category), excluded={0}
        )
        exact = sorted(
            (r for r in inside if r != 0), key=lambda r: -version.item_vectors[r] @ query
        )
        assert found.rows.tolist() == exact[:4]
    nothing = similar_items(version, query, limit=4, among=within(version, "no such"), excluded=())
    assert len(nothing.rows) == 0


@BOTH_WAYS
def test_a_category_list_scores_each_sources_best_not_the_whole_category(
    monkeypatch: pytest.MonkeyPatch, scan_below: int
) -> None:
    monkeypatch.setattr(ann, "SCAN_BELOW", scan_below)
    rng = np.random.default_rng(8)
    n = 2_000
    items = rng.standard_normal((n, DIM)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    settings = IndexSettings(exact_below=1)
    big = IndexVersion(
        manifest={"version": 1, "data_as_of_epoch": 0.0},
        item_ids=[f"i{r}" for r in range(n)],
        item_titles=[""] * n,
        item_index=ann.build(items, settings),
        category_names=["odd", "even"],
        item_category=(np.arange(n) % 2 == 0).astype(np.int32),
        popularity=rng.uniform(0, 1, n).astype(np.float32),
        user_ids=["u"],
        user_index=ann.build(items[:1], settings),
        history_indptr=np.array([0, 3], dtype=np.int64),
        history_items=np.array([1, 2, 3], dtype=np.int32),
        history_weights=np.array([2, 2, 2], dtype=np.float32),
    )
    profile = profile_of(big, "u")
    excluded = excluded_rows(big, profile, (), True)
    blended = blend_for(big, profile, RankingSettings(), 5, within(big, "even"), excluded, None)
    # A thousand items are even: the candidates are the trending and content sources' best
    # few among them, not all of them.
    assert 0 < len(blended.rows) <= 2 * (5 + len(excluded))
    assert (blended.rows % 2 == 0).all()
    evens = np.arange(0, n, 2)
    by_popularity = evens[np.lexsort((evens, -big.popularity[evens]))]
    assert set(by_popularity[: 5 + len(excluded)].tolist()) - excluded <= set(blended.rows.tolist())
    assert profile.vector is not None
    nearest_evens = evens[np.argsort(-(items[evens] @ profile.vector))][:5]
    assert set(nearest_evens.tolist()) - excluded <= set(blended.rows.tolist())


def test_similar_users_leave_out_the_user(version: IndexVersion) -> None:
    fan_a = profile_of(version, "fan-a")
    assert fan_a.vector is not None
    rows, _ = similar_users(version, fan_a.vector, limit=5, min_similarity=None, exclude={0})
    assert rows.tolist() == [1]
    rows, _ = similar_users(version, fan_a.vector, limit=5, min_similarity=0.9, exclude={0})
    assert rows.tolist() == []
