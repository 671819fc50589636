"""Collaborative signals fitted at build time: implicit-feedback ALS and item co-occurrence.

Both learn from the same binary matrix P (users x items): P[u, i] = 1 when user u's net
interaction weight on item i reaches `positive_min` (they liked it), else 0.

ALS: Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets"
(ICDM 2008), fitted with the `implicit` package. Item factors Y (n_items x f) are served from a
FAISS inner-product index; a user's factors are solved here from their liked items, so a user
who acted a moment ago is scored with their current history, not the one the build saw:
    x_u = (Y^T Y + reg I + sum_{i in P_u} (c - 1) y_i y_i^T)^-1  sum_{i in P_u} c y_i,  c = alpha

Co-occurrence: cosine between item columns of P, keeping each item's `neighbours` most similar
items (Sarwar et al., "Item-based collaborative filtering", WWW 2001):
    sim(i, j) = |users who liked i and j| / sqrt(|liked i| |liked j|)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from common.settings import CollaborativeSettings, IndexSettings
from indexing import ann

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


@dataclass
class Collaborative:
    """What a version serves of the collaborative model."""

    factor_index: Any  # FAISS inner-product index over the item factors Y, (n_items, f)
    neighbours: sp.csr_matrix  # (n_items, n_items) float32, top-k cosine per row
    regularization: float
    alpha: float
    item_factors: Floats = field(init=False)  # a view into factor_index's storage
    gram: npt.NDArray[np.float64] = field(init=False)  # Y^T Y, (f, f)

    def __post_init__(self) -> None:
        self.item_factors = ann.vectors_of(self.factor_index)
        y = self.item_factors.astype(np.float64)
        self.gram = y.T @ y

    def user_factors(self, liked: Rows) -> Floats:
        """A user's factors from the rows of the items they liked: shape (f,)."""
        f = self.item_factors.shape[1]
        if len(liked) == 0:
            return np.zeros(f, dtype=np.float32)
        y = self.item_factors[liked].astype(np.float64)
        a = self.gram + self.regularization * np.eye(f) + (self.alpha - 1.0) * (y.T @ y)
        b = self.alpha * y.sum(axis=0)
        return np.linalg.solve(a, b).astype(np.float32)

    def neighbour_scores(self, liked: Rows, weights: Floats | None = None) -> sp.csr_matrix:
        """One row (1 x n_items): sum over liked items of weight * their neighbour row."""
        if weights is None:
            weights = np.ones(len(liked), dtype=np.float32)
        picked = sp.csr_matrix(
            (weights, (np.zeros(len(liked), dtype=np.int64), liked)),
            shape=(1, self.neighbours.shape[0]),
            dtype=np.float32,
        )
        result: sp.csr_matrix = picked @ self.neighbours
        return result


def positives(history: sp.csr_matrix, positive_min: float) -> sp.csr_matrix:
    """Binary users x items matrix of the pairs whose net weight reaches `positive_min`."""
    liked = (history >= positive_min).astype(np.float32)
    liked.eliminate_zeros()
    return sp.csr_matrix(liked)


def fit(
    liked: sp.csr_matrix, settings: CollaborativeSettings, index: IndexSettings
) -> Collaborative:
    """Fit ALS and co-occurrence on a binary users x items matrix."""
    return Collaborative(
        factor_index=ann.build(_als(liked, settings), index),
        neighbours=cooccurrence(liked, settings.neighbours),
        regularization=settings.regularization,
        alpha=settings.alpha,
    )


def _als(liked: sp.csr_matrix, settings: CollaborativeSettings) -> Floats:
    n_users, n_items = liked.shape
    if liked.nnz == 0 or n_users < 2:
        return np.zeros((n_items, settings.factors), dtype=np.float32)
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit warns (and runs slower) when BLAS runs threads inside its own threads.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=settings.factors,
            regularization=settings.regularization,
            alpha=settings.alpha,
            iterations=settings.iterations,
            random_state=settings.seed,
        )
        model.fit(liked, show_progress=False)
    return np.ascontiguousarray(model.item_factors, dtype=np.float32)


def cooccurrence(liked: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Top-`k` cosine neighbours of each item (no item is its own neighbour)."""
    n_items = liked.shape[1]
    by_item = sp.csr_matrix(liked.T, dtype=np.float32)
    counts = np.asarray(by_item.sum(axis=1)).ravel()
    scale = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0).astype(np.float32)
    normed = sp.diags(scale) @ by_item
    rows, cols, vals = [], [], []
    # Blocks of items keep the dense intermediate small for large catalogs.
    block = max(1, 2_000_000 // max(n_items, 1))
    for start in range(0, n_items, block):
        sims = (normed[start : start + block] @ normed.T).toarray()
        for offset, row in enumerate(sims):
            item = start + offset
            row[item] = 0.0
            nonzero = np.flatnonzero(row > 0)
            if len(nonzero) > k:
                nonzero = nonzero[np.argpartition(-row[nonzero], k - 1)[:k]]
            rows.append(np.full(len(nonzero), item, dtype=np.int64))
            cols.append(nonzero)
            vals.append(row[nonzero])
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
