"""Indexes for the largest inner products, over vectors whose norms differ."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from common.settings import IndexSettings
from indexing import ann
from indexing.collaborative import Collaborative


def factors(n: int, seed: int = 0) -> np.ndarray:
    """ALS-like factors: norms spread over a factor of twenty."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((n, 16)).astype(np.float32)
    return y * rng.uniform(0.1, 2.0, (n, 1)).astype(np.float32)


def test_the_norm_column_keeps_the_inner_products_and_their_order() -> None:
    y = factors(2_000)
    index = ann.inner_product_index(y, IndexSettings(exact_below=10_000))
    stored = ann.vectors_of(index)
    assert stored.shape == (2_000, 17)
    assert np.allclose(np.linalg.norm(stored, axis=1), np.linalg.norm(y, axis=1).max())
    queries = np.random.default_rng(1).standard_normal((20, 16)).astype(np.float32)
    scores, rows = ann.search(index, np.hstack([queries, np.zeros((20, 1), np.float32)]), 10)
    exact = queries @ y.T
    assert rows.tolist() == np.argsort(-exact, axis=1, kind="stable")[:, :10].tolist()
    assert scores == pytest.approx(np.take_along_axis(exact, rows, axis=1), rel=1e-4)


def test_a_graph_over_the_padded_factors_finds_the_largest_inner_products() -> None:
    y = factors(20_000, seed=2)
    settings = IndexSettings(exact_below=1, hnsw_ef_construction=40)
    empty = sp.csr_matrix((len(y), len(y)), dtype=np.float32)
    model = Collaborative(
        ann.inner_product_index(y, settings), empty, empty, empty, 0.1, 1.0, norm_column=True
    )
    assert model.item_factors.shape == y.shape and np.array_equal(model.item_factors, y)
    queries = np.random.default_rng(3).standard_normal((200, 16)).astype(np.float32)
    truth = np.argsort(-(queries @ y.T), axis=1)[:, :10]
    found = [set(model.items_for(q, 10).tolist()) for q in queries]
    recall = np.mean([len(f & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
