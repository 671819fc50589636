"""Sparse row sums on a held accumulator equal the dense product, and leave it zero."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from indexing import rowsums


def matrix(n: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n, n)).astype(np.float32)
    dense[rng.random((n, n)) > density] = 0.0
    return sp.csr_matrix(dense - 0.2 * (dense > 0))  # some negative weights too


def test_sums_match_the_dense_product_and_the_accumulator_is_zero_after() -> None:
    m = matrix(300, 0.05, seed=1)
    rng = np.random.default_rng(2)
    rows = rng.choice(300, 40, replace=False).astype(np.int64)
    weights = rng.random(40).astype(np.float32)
    picked = sp.csr_matrix((weights, (np.zeros(40, dtype=np.int64), rows)), shape=(1, 300))
    expected = (picked @ m).toarray().ravel()
    with rowsums.scratch(300, 2) as sums:
        sums.add(0, m, rows[:25], weights[:25])
        sums.add(0, m, rows[25:], weights[25:])  # two adds into one sum, as the recent source
        np.testing.assert_allclose(sums.sums[0], expected, rtol=1e-5, atol=1e-6)
        assert not sums.sums[1].any()
        columns = sums.columns(0)
        assert len(set(columns.tolist())) == len(columns)  # distinct
        touched = np.unique(m[rows].indices)
        assert sorted(columns.tolist()) == touched.tolist()
        positive = np.flatnonzero(expected > 0)
        best = positive[np.argsort(-expected[positive])[:15]]
        assert set(sums.top(0, 15).tolist()) == set(best.tolist())
        assert set(sums.top(0, 10_000).tolist()) == set(positive.tolist())
    with rowsums.scratch(300, 2) as again:
        assert again is sums  # held by the thread, not allocated per use
        assert not any(s.any() for s in again.sums)


def test_an_error_midway_still_leaves_zeros() -> None:
    m = matrix(50, 0.3, seed=3)
    try:
        with rowsums.scratch(50, 1) as sums:
            sums.add(0, m, np.arange(10, dtype=np.int64), np.ones(10, dtype=np.float32))
            raise RuntimeError("a ranking failed")
    except RuntimeError:
        pass
    with rowsums.scratch(50, 1) as sums:
        assert not sums.sums[0].any()
        assert len(sums.columns(0)) == 0


def test_rows_without_entries_add_nothing() -> None:
    m = sp.csr_matrix((20, 20), dtype=np.float32)
    with rowsums.scratch(20, 1) as sums:
        sums.add(0, m, np.arange(5, dtype=np.int64), np.ones(5, dtype=np.float32))
        assert len(sums.top(0, 5)) == 0
