"""The collaborative models against their formulas, on small data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from common.settings import CollaborativeSettings, IndexSettings
from indexing import collaborative, rowsums
from indexing.profiles import evidence


def random_matrix(users: int, items: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density) * rng.integers(1, 4, (users, items))
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.mark.parametrize("band_entries", [2_000_000, 100])
def test_ease_is_steck_closed_form_when_every_weight_is_kept(
    band_entries: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collaborative, "GRAM_BAND_ENTRIES", band_entries)  # 100: 2 columns
    x = random_matrix(200, 40, 0.15, seed=1)
    lam = 25.0
    weights = collaborative.ease(x, lam, max_items=1_000, k=40).toarray()
    dense = x.toarray().astype(np.float64)
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(40))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    assert weights == pytest.approx(b, abs=1e-4)


def test_ease_covers_only_the_most_liked_items_beyond_its_size() -> None:
    x = random_matrix(300, 60, 0.1, seed=2)
    users_per_item = np.diff(sp.csc_matrix(x).indptr)
    covered = np.flatnonzero(np.abs(collaborative.ease(x, 10.0, 20, 60).toarray()).sum(axis=0))
    assert len(covered) <= 20
    assert users_per_item[covered].min() >= np.sort(users_per_item)[-20]


def test_each_ease_row_keeps_its_weights_largest_in_magnitude() -> None:
    x = random_matrix(200, 40, 0.2, seed=3)
    full = collaborative.ease(x, 10.0, 1_000, 40).toarray()
    kept = collaborative.ease(x, 10.0, 1_000, 5).toarray()
    for row, top in zip(full, kept, strict=True):
        assert np.count_nonzero(top) == 5
        strongest = sorted(np.abs(row))[-5:]
        assert sorted(np.abs(top[top != 0])) == pytest.approx(strongest)


def test_shrinkage_lets_two_hundred_co_occurrences_outrank_two() -> None:
    # Items 0 and 1 share their only 2 users; items 2 and 3 share 200 of their 250.
    rows, cols = [], []
    for user in range(2):
        rows += [user, user]
        cols += [0, 1]
    for user in range(2, 302):
        shared = user < 202
        picked = [2, 3] if shared else [2 if user % 2 else 3]
        rows += [user] * len(picked)
        cols += picked
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(302, 4))
    plain = collaborative.cosine(x, 3, shrink=0.0).toarray()
    assert plain[0, 1] == pytest.approx(1.0) and plain[0, 1] > plain[2, 3]
    shrunk = collaborative.cosine(x, 3, shrink=20.0).toarray()
    assert shrunk[2, 3] > shrunk[0, 1]
    assert shrunk[0, 1] == pytest.approx(2 / (2 + 20))
    assert shrunk[2, 3] == pytest.approx(200 / (250 + 20))


def test_cosine_keeps_each_items_k_best_as_the_dense_computation_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = random_matrix(120, 60, 0.15, seed=11)
    # Small blocks, so that several are formed and stitched together.
    monkeypatch.setattr(collaborative, "BLOCK_PAIRS", 500)
    for k, shrink in [(4, 0.0), (10, 5.0), (100, 5.0)]:
        dense = (x.T @ x).toarray()
        norms = np.sqrt(np.diag(dense))
        sims = dense / (norms[:, None] * norms[None, :] + shrink + 1e-9)
        np.fill_diagonal(sims, 0.0)
        got = collaborative.cosine(x, k, shrink).toarray()
        for item in range(60):
            positive = np.flatnonzero(sims[item] > 0)
            kept = np.flatnonzero(got[item])
            assert len(kept) == min(k, len(positive))
            np.testing.assert_allclose(got[item, kept], sims[item, kept], rtol=1e-5)
            if len(kept) < len(positive):  # nothing dropped beats what was kept
                dropped = np.setdiff1d(positive, kept)
                assert sims[item, dropped].max() <= sims[item, kept].min() + 1e-6


def test_a_users_factors_solve_the_confidence_weighted_least_squares() -> None:
    """x_u minimises sum_i c_i (p_i - x . y_i)^2 + reg |x|^2, c_i = 1 + alpha e_i on the user's
    items (p_i = 1) and 1 elsewhere (p_i = 0): Hu, Koren and Volinsky's objective."""
    x = random_matrix(60, 30, 0.2, seed=4)
    settings = CollaborativeSettings(factors=6, regularization=0.3, alpha=2.0, iterations=5)
    model = collaborative.fit(x, settings, IndexSettings())
    y = model.item_factors.astype(np.float64)
    rows = np.array([3, 7, 11], dtype=np.int64)
    strength = np.array([1.0, 3.0, 0.5], dtype=np.float32)
    c = np.ones(30)
    c[rows] += settings.alpha * strength
    p = np.zeros(30)
    p[rows] = 1.0
    expected = np.linalg.solve(y.T @ (c[:, None] * y) + 0.3 * np.eye(6), y.T @ (c * p))
    assert model.user_factors(rows, strength) == pytest.approx(expected, rel=1e-3, abs=1e-5)


def test_evidence_grows_with_weight_repetition_and_recency() -> None:
    day = 86_400.0
    # One user: a view, two views (net 2), a purchase, a view 30 days before the rest, a dislike.
    weights = np.array([1.0, 2.0, 3.0, 1.0, -2.0], dtype=np.float32)
    times = np.array([30, 30, 30, 0, 30], dtype=np.float64) * day
    indptr = np.array([0, 5], dtype=np.int64)
    plain = evidence(weights, times, indptr, half_life_days=0.0)
    assert plain.tolist() == [1.0, 2.0, 3.0, 1.0, 0.0]
    faded = evidence(weights, times, indptr, half_life_days=30.0)
    assert faded[:3].tolist() == [1.0, 2.0, 3.0]
    assert faded[3] == pytest.approx(0.5) and faded[4] == 0.0


def test_a_view_only_history_is_collaborative_evidence() -> None:
    views = random_matrix(80, 25, 0.2, seed=5)
    views.data[:] = 1.0
    model = collaborative.fit(views, CollaborativeSettings(factors=4), IndexSettings())
    rows = views.indices[views.indptr[0] : views.indptr[1]].astype(np.int64)
    assert np.any(model.user_factors(rows))
    with rowsums.scratch(25, 2) as sums:
        model.ease_scores(sums, 0, rows, np.ones(len(rows), dtype=np.float32))
        model.neighbour_scores(sums, 1, rows, np.ones(len(rows), dtype=np.float32))
        assert sums.sums[0].any() and sums.sums[1].any()
    assert model.item_factors.shape == (25, 4)


def sequences(*histories: list[tuple[int, float]]) -> collaborative.Sequences:
    """Users' (item, time) acts, user by user."""
    users, items, times = [], [], []
    for user, acts in enumerate(histories):
        for item, at in acts:
            users.append(user)
            items.append(item)
            times.append(at)
    return collaborative.sequences_of(
        np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), np.array(times)
    )


def test_what_follows_counts_later_acts_within_the_window_shrunk() -> None:
    shrink = collaborative.SEQUENCE_SHRINK
    # 0 then 1 then 2; 0 then 1; 0 and 2 at the same moment, so neither follows the other;
    # the last user's acts arrive out of time order.
    seen = sequences(
        [(0, 1.0), (1, 2.0), (2, 3.0)],
        [(0, 1.0), (1, 2.0)],
        [(0, 5.0), (2, 5.0)],
        [(1, 9.0), (0, 8.0)],
    )
    one = collaborative.follows(seen, 3, window=1, k=3).toarray()
    assert one[0, 1] == pytest.approx(3 / (3 + shrink))
    assert one[1, 2] == pytest.approx(1 / (1 + shrink))
    assert one[0, 2] == 0.0 and one[1, 0] == 0.0 and one[2].sum() == 0.0
    two = collaborative.follows(seen, 3, window=2, k=3).toarray()
    assert two[0, 2] == pytest.approx(1 / (4 + shrink))
    assert two[0, 1] == pytest.approx(3 / (4 + shrink))


def test_each_item_keeps_its_k_most_frequent_followers() -> None:
    # Item 0 is followed by item f in f of the histories.
    histories = [[(0, 0.0), (f, 1.0)] for f in range(1, 6) for _ in range(f)]
    kept = collaborative.follows(sequences(*histories), 6, window=1, k=2).toarray()
    assert np.flatnonzero(kept[0]).tolist() == [4, 5]
    assert kept[0, 5] > kept[0, 4]


def test_followers_come_out_alike_however_the_rows_are_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    histories = [
        [(int(i), float(t)) for t, i in enumerate(rng.integers(0, 30, 12))] for _ in range(40)
    ]
    seen = sequences(*histories)
    whole = collaborative.follows(seen, 30, window=3, k=4)
    monkeypatch.setattr(collaborative, "BLOCK_PAIRS", 7)  # a few rows a block
    blocked = collaborative.follows(seen, 30, window=3, k=4)
    assert whole.nnz > 30 * 2
    assert (whole != blocked).nnz == 0
    assert blocked.indices.dtype == np.int32


@pytest.mark.parametrize(("k", "chunk"), [(1, 32_768), (3, 7), (40, 32_768), (40, 5)])
def test_the_best_of_each_row_are_those_a_full_sort_keeps(
    k: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collaborative, "TOP_ROWS", chunk)  # long rows counted per chunk
    rng = np.random.default_rng(k)
    start, stop = 100, 400
    lengths = rng.choice([0, 1, k, k + 1, 5 * k, 300], size=stop - start)
    row = np.repeat(np.arange(start, stop), lengths)
    col = np.concatenate([np.sort(rng.choice(2_000, n, replace=False)) for n in lengths])
    # Ties in plenty, the ends of (0, 1], and values a bin apart and within one.
    pool = np.array([1.0, 0.5, 0.4999, 0.25, 0.1, 1e-3, 1e-6, 1e-9], dtype=np.float32)
    value = np.where(
        rng.random(len(row)) < 0.5,
        rng.choice(pool, len(row)),
        rng.random(len(row)).astype(np.float32) + np.float32(1e-7),
    ).astype(np.float32)
    value = np.minimum(value, np.float32(1.0))
    found = collaborative._best_per_row(row, col, value, k, start, stop)
    expected = set()
    for r in range(start, stop):
        at = np.flatnonzero(row == r)
        best = sorted(at.tolist(), key=lambda n: (-float(value[n]), int(col[n])))[:k]
        expected |= {(r, int(col[n]), float(value[n])) for n in best}
    got = set(zip(found[0].tolist(), found[1].tolist(), found[2].tolist(), strict=True))
    assert got == expected
    assert len(found[0]) == len(expected)
