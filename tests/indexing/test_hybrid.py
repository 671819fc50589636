"""The blend's negative push, its sequence source and the MMR reorder, on data whose right
answer is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from common.settings import IndexSettings, RankingSettings
from indexing import ann, diversity, explanations, holdout, hybrid
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative
from indexing.profiles import Profile
from indexing.ranking import recommend
from indexing.sources import sequence

DIM = 8


def unit(*coords: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(coords)] = coords
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def version() -> IndexVersion:
    """a0..a5 along axis 0, b0..b5 along axis 1, each tilted a little by its number."""
    vectors = np.vstack(
        [unit(1.0, 0.0, 0.05 * n) for n in range(6)] + [unit(0.0, 1.0, 0.05 * n) for n in range(6)]
    )
    ids = [f"a{n}" for n in range(6)] + [f"b{n}" for n in range(6)]
    index = ann.build(vectors, IndexSettings())
    return IndexVersion(
        manifest={"version": 1, "data_as_of_epoch": 0.0},
        item_ids=ids,
        item_titles=ids,
        item_index=index,
        category_names=["A", "B"],
        item_category=np.array([0] * 6 + [1] * 6, dtype=np.int32),
        popularity=np.ones(12, dtype=np.float32),
        user_ids=[],
        user_index=ann.build(np.zeros((0, DIM), dtype=np.float32), IndexSettings()),
        history_indptr=np.zeros(1, dtype=np.int64),
        history_items=np.zeros(0, dtype=np.int32),
        history_weights=np.zeros(0, dtype=np.float32),
    )


def names(version: IndexVersion, rows: np.ndarray) -> list[str]:
    return [version.item_ids[r] for r in rows]


def test_disliking_one_item_sinks_the_items_like_it(version: IndexVersion) -> None:
    # Taste halfway between the genres: both interleave until the user dislikes b5.
    taste = unit(1.0, 1.0)
    settings = RankingSettings()
    neutral = Profile(vector=taste, seen=frozenset({"a5"}), liked=("a5",), count=1)
    disliked = Profile(
        vector=taste,
        seen=frozenset({"a5", "b5"}),
        negative=frozenset({"b5"}),
        liked=("a5",),
        count=2,
    )
    before = names(version, recommend(version, neutral, settings, depth=10, cold_start_min=1).rows)
    after = names(version, recommend(version, disliked, settings, depth=10, cold_start_min=1).rows)
    assert any(n.startswith("b") for n in before[:5])
    assert after[:5] == ["a0", "a1", "a2", "a3", "a4"]
    assert all(n.startswith("b") for n in after[5:]) and "b5" not in after


def test_the_push_is_the_closeness_to_rejected_items_times_the_spread(
    version: IndexVersion,
) -> None:
    settings = RankingSettings()
    rows = np.arange(10, dtype=np.int64)  # a0..a5 and b0..b3, scored as given
    rejected = np.array([version.item_row["b5"]], dtype=np.int64)
    liked = np.array([version.item_row["a5"]], dtype=np.int64)

    def blend(settings: RankingSettings) -> hybrid.Blend:
        return hybrid.blend(
            version,
            settings,
            taste=unit(1.0, 1.0),
            liked=liked,
            evidence=np.ones(1, dtype=np.float32),
            rejected=rejected,
            trending=hybrid.Trend(version.popularity, version.engaged_rows),
            depth=10,
            only=rows,
        )

    blended = blend(settings)
    to_rejected = version.item_vectors[rows] @ version.item_vectors[rejected[0]]
    to_liked = np.maximum(version.item_vectors[rows] @ version.item_vectors[liked[0]], 0)
    closeness = np.maximum(to_rejected - to_liked, 0)
    assert closeness[version.item_row["b0"]] > 0.9 and closeness[version.item_row["a0"]] == 0
    assert blended.push == pytest.approx(closeness, abs=1e-6)
    unpushed = sum(blended.weights[k] * blended.scaled[k] for k in hybrid.SOURCES)
    spread = unpushed.max() - unpushed.min()
    assert spread > 0
    expected = unpushed - settings.negative_weight * spread * closeness
    assert blended.total == pytest.approx(expected, abs=1e-5)
    # With no weight on the push, nothing moves.
    flat = blend(settings.model_copy(update={"negative_weight": 0.0}))
    assert flat.total == pytest.approx(unpushed, abs=1e-6)


def test_mmr_trades_relevance_for_variety_by_lambda() -> None:
    # Items 0 and 1 are near duplicates, item 2 is different but less relevant.
    vectors = np.vstack([unit(1.0, 0.0), unit(1.0, 0.05), unit(0.0, 1.0)])
    rows = np.arange(3, dtype=np.int64)
    relevance = np.array([1.0, 0.9, 0.5], dtype=np.float32)
    no_category = np.full(3, -1, dtype=np.int32)
    keep = diversity.rerank(rows, relevance, vectors, no_category, lam=1.0)
    assert keep.tolist() == [0, 1, 2]
    # lambda 0.5 after picking 0: item 1 gains 0.5*0.8 - 0.5*0.9988 < 0, item 2 gains
    # 0.5*0 - 0.5*0 = 0, so the different item comes second.
    varied = diversity.rerank(rows, relevance, vectors, no_category, lam=0.5)
    assert varied.tolist() == [0, 2, 1]
    # lambda 0.9: item 1 gains 0.9*0.8 - 0.1*0.9988 = 0.62 > 0: relevance still wins.
    mild = diversity.rerank(rows, relevance, vectors, no_category, lam=0.9)
    assert mild.tolist() == [0, 1, 2]


def test_a_category_cap_holds_back_a_full_category() -> None:
    vectors = np.vstack([unit(1.0, 0.1 * n) for n in range(4)])
    rows = np.arange(4, dtype=np.int64)
    relevance = np.array([4, 3, 2, 1], dtype=np.float32)
    categories = np.array([0, 0, 0, 1], dtype=np.int32)
    order = diversity.rerank(rows, relevance, vectors, categories, lam=1.0, max_per_category=2)
    # Two of category 0, then category 1, then the held-back third of category 0.
    assert order.tolist() == [0, 1, 3, 2]


def test_the_api_ranking_applies_mmr_from_settings(version: IndexVersion) -> None:
    taste = unit(1.0, 0.2)  # leans to genre A: relevance alone puts every a first
    profile = Profile(vector=taste, seen=frozenset({"a5"}), liked=("a5",), count=1)
    plain = recommend(version, profile, RankingSettings(), depth=10, cold_start_min=1)
    assert names(version, plain.rows[:5]) == ["a0", "a1", "a2", "a3", "a4"]
    diverse = recommend(
        version, profile, RankingSettings(mmr_lambda=0.3), depth=10, cold_start_min=1
    )
    assert any(n.startswith("b") for n in names(version, diverse.rows[:3]))
    assert sorted(diverse.rows.tolist()) == sorted(plain.rows.tolist())


def test_the_sequence_source_ranks_what_others_went_on_to(version: IndexVersion) -> None:
    """Every earlier user went from a0 to b5: a user whose newest item is a0 gets b5 first
    from the sequence source, though nothing in b5's vector is like a0."""
    n_items = len(version.item_ids)
    users = np.repeat(np.arange(20, dtype=np.int64), 2)
    items = np.tile(np.array([0, 11], dtype=np.int64), 20)
    times = np.tile(np.array([1.0, 2.0]), 20)
    following = sequence.follows(sequence.sequences_of(users, items, times), n_items, 3, 10)
    empty = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    factors = ann.build(np.zeros((n_items, 2), dtype=np.float32), IndexSettings())
    with_model = replace(
        version, collaborative=Collaborative(factors, empty, empty, following, 0.1, 1.0)
    )
    # Those 20 users are the model's alone, not the version's history: a0 is well known.
    with_model.item_support[:] = 1.0
    settings = holdout.alone(RankingSettings(), "sequence")
    liked = np.array([0], dtype=np.int64)
    blended = hybrid.blend(
        with_model,
        settings,
        taste=None,
        liked=liked,
        evidence=np.ones(1, dtype=np.float32),
        rejected=np.zeros(0, dtype=np.int64),
        trending=hybrid.Trend.of(np.zeros(n_items, dtype=np.float32)),
        depth=5,
        only=np.arange(1, n_items),
    )
    rows, _ = hybrid.ranked(with_model, settings, blended, 5)
    assert names(with_model, rows[:1]) == ["b5"]
    at = int(np.flatnonzero(blended.rows == 11)[0])
    assert blended.raw["sequence"][at] == pytest.approx(20 / (20 + 5))
    assert explanations.reasons(with_model, blended, at, liked, liked) == ["often chosen after a0"]


def test_a_source_is_weighed_by_its_support_and_spread_next_to_the_typical_users() -> None:
    values = np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32)
    z = hybrid.standardised(values)
    scaled, trust = hybrid.trusted(values, typical=None, support=0.5)
    np.testing.assert_allclose(scaled, 0.5 * z)
    assert trust == 0.5
    # Spread half the typical one: half as loud; a wider spread is no louder than z.
    spread = float(values.std())
    assert hybrid.trusted(values, 2 * spread, 1.0)[1] == pytest.approx(0.5)
    assert hybrid.trusted(values, spread / 2, 1.0)[1] == 1.0


def _with_history(version: IndexVersion, users_of: dict[int, int]) -> IndexVersion:
    """`version` with `users_of[row]` users behind each item row (their items alone)."""
    rows = [row for row, users in users_of.items() for _ in range(users)]
    indptr = np.arange(len(rows) + 1, dtype=np.int64)
    return replace(
        version,
        user_ids=[f"u{n}" for n in range(len(rows))],
        user_index=ann.build(np.zeros((len(rows), DIM), dtype=np.float32), IndexSettings()),
        history_indptr=indptr,
        history_items=np.array(rows, dtype=np.int32),
        history_weights=np.ones(len(rows), dtype=np.float32),
        collaborative=Collaborative(
            ann.build(np.eye(12, 2, dtype=np.float32), IndexSettings()),
            *(sp.identity(12, dtype=np.float32, format="csr") for _ in range(3)),
            0.1,
            1.0,
        ),
    )


def test_thin_support_is_quiet_and_moves_its_weight_to_content(version: IndexVersion) -> None:
    """a0..a2 are each known to 2 users, b0..b2 to 40: a user of the first is thin next to
    the typical user (of the second), and content carries them as far as it is informative."""
    known = _with_history(version, {0: 2, 1: 2, 2: 2, 6: 40, 7: 40, 8: 40})
    typical = {"spread": {}, "support": {k: 0.8 for k in hybrid.FROM_OTHERS}}
    known.manifest = known.manifest | {"typical": typical, "content_informative": 1.0}
    settings = RankingSettings()

    def blend_of(rows: list[int]) -> hybrid.Blend:
        liked = np.array(rows, dtype=np.int64)
        return hybrid.blend(
            known,
            settings,
            taste=unit(1.0, 0.0),
            liked=liked,
            evidence=np.ones(len(rows), dtype=np.float32),
            rejected=np.zeros(0, dtype=np.int64),
            trending=hybrid.Trend.of(np.ones(12, dtype=np.float32)),
            depth=10,
        )

    thin, strong = blend_of([0, 1, 2]), blend_of([6, 7, 8])
    support = 2 / (2 + 10)  # an item's users u: u / (u + SUPPORT_USERS)
    assert thin.support["ease"] == pytest.approx(support / 0.8)
    assert strong.support["ease"] == 1.0  # above the typical user's: no quieter
    assert thin.trust["ease"] == pytest.approx(support / 0.8)
    # n counts items by their support: the thin user leans to the cold weights.
    assert thin.weights == pytest.approx(
        {**hybrid.weights_for(settings, 3 * support, thin.support, known.content_informative)}
    )
    assert thin.weights["content"] > strong.weights["content"]
    lost = sum(
        hybrid.weights_for(settings, 3 * support)[k] * (1 - thin.support[k])
        for k in hybrid.FROM_OTHERS
    )
    assert thin.weights["content"] == pytest.approx(
        hybrid.weights_for(settings, 3 * support)["content"] + lost
    )
    # A version built before any of this is served as it was tuned: the count of items.
    legacy = replace(known, manifest={"version": 1, "data_as_of_epoch": 0.0})
    blended = hybrid.blend(
        legacy,
        settings,
        taste=unit(1.0, 0.0),
        liked=np.array([0, 1, 2], dtype=np.int64),
        evidence=np.ones(3, dtype=np.float32),
        rejected=np.zeros(0, dtype=np.int64),
        trending=hybrid.Trend.of(np.ones(12, dtype=np.float32)),
        depth=10,
    )
    assert blended.weights == pytest.approx(hybrid.weights_for(settings, 3))
    assert set(blended.trust.values()) == {1.0}
