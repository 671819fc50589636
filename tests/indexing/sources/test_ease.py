"""EASE (indexing/sources/ease.py) against Steck's closed form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from indexing.sources import ease


def random_matrix(users: int, items: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density) * rng.integers(1, 4, (users, items))
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.mark.parametrize("band_entries", [2_000_000, 100])
def test_ease_is_steck_closed_form_when_every_weight_is_kept(
    band_entries: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ease, "GRAM_BAND_ENTRIES", band_entries)  # 100: 2 columns
    x = random_matrix(200, 40, 0.15, seed=1)
    lam = 25.0
    weights = ease.ease(x, lam, max_items=1_000, k=40).toarray()
    dense = x.toarray().astype(np.float64)
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(40))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    assert weights == pytest.approx(b, abs=1e-4)


def test_ease_covers_only_the_most_liked_items_beyond_its_size() -> None:
    x = random_matrix(300, 60, 0.1, seed=2)
    users_per_item = np.diff(sp.csc_matrix(x).indptr)
    covered = np.flatnonzero(np.abs(ease.ease(x, 10.0, 20, 60).toarray()).sum(axis=0))
    assert len(covered) <= 20
    assert users_per_item[covered].min() >= np.sort(users_per_item)[-20]


def test_each_ease_row_keeps_its_weights_largest_in_magnitude() -> None:
    x = random_matrix(200, 40, 0.2, seed=3)
    full = ease.ease(x, 10.0, 1_000, 40).toarray()
    kept = ease.ease(x, 10.0, 1_000, 5).toarray()
    for row, top in zip(full, kept, strict=True):
        assert np.count_nonzero(top) == 5
        strongest = sorted(np.abs(row))[-5:]
        assert sorted(np.abs(top[top != 0])) == pytest.approx(strongest)


def test_the_lower_inverse_is_the_inverse_below_the_diagonal() -> None:
    rng = np.random.default_rng(6)
    a = rng.standard_normal((30, 12))
    matrix = (a.T @ a + np.eye(12)).astype(np.float32)
    expected = np.linalg.inv(matrix.astype(np.float64))
    lower = ease.spd_inverse_lower(matrix.copy())
    below = np.tril_indices(12)
    np.testing.assert_allclose(lower[below], expected[below], rtol=1e-3, atol=1e-5)
