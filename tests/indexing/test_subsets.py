"""Retrieval kept to a subset of the catalog: full lists, only from within, at any share."""

from __future__ import annotations

import numpy as np
import pytest

from common.settings import IndexSettings
from indexing import ann
from indexing.subsets import Subset

N, DIM = 20_000, 32


@pytest.fixture(scope="module")
def index() -> object:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ann.build(vectors, IndexSettings(exact_below=1))  # HNSW


@pytest.mark.parametrize("share", [0.5, 0.05, 0.01, 0.001])
def test_nearest_within_a_subset_are_full_and_its_own(index: object, share: float) -> None:
    rng = np.random.default_rng(int(share * 1000))
    member = rng.random(N) < share
    subset = Subset(member, f"{share:.1%}")
    vectors = ann.vectors_of(index)
    k = min(20, len(subset))  # a subset of 0.1% holds about 20 rows
    for query in vectors[rng.choice(N, 5, replace=False)]:
        scores, rows = subset.nearest(index, query, k)
        assert len(rows) == k and member[rows].all()
        exact = subset.rows[np.argsort(-(vectors[subset.rows] @ query))][:k]
        # Scanned where the subset is small (exact); searched with a selector where it is
        # large (approximate, and then nearly all of the exact best).
        assert len(set(rows.tolist()) & set(exact.tolist())) >= (k if share < 0.02 else 16)
        assert (np.diff(scores) <= 0).all()


def everything_in(n: int, rows: list[int], key: str) -> Subset:
    member = np.zeros(n, dtype=bool)
    member[rows] = True
    return Subset(member, key)


def test_a_subset_reads_its_popular_rows_sorted_once() -> None:
    popularity = np.array([0, 5, 3, 0, 9, 3], dtype=np.float32)
    subset = everything_in(6, [0, 1, 2, 3, 5], "some")
    assert subset.engaged(popularity).tolist() == [1, 2, 5]
    both = subset & everything_in(6, [2, 3, 4, 5], "others")
    assert both.rows.tolist() == [2, 3, 5] and both.contains(np.array([4, 5])).tolist() == [
        False,
        True,
    ]
