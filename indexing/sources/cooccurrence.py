"""cooccurrence: the shrunk item-item cosine over the user's items.

Cosine with shrinkage (Sarwar et al., "Item-Based Collaborative Filtering Recommendation
Algorithms", WWW 2001; shrinkage after Bell and Koren, ICDM 2007), over the item columns of
X:
    sim(i, j) = X_i . X_j / (|X_i| |X_j| + shrink)
so two co-occurrences cannot outrank two hundred. Each item keeps its `neighbours` most
similar items (S), and
    score(c) = sum over the user's positive items j of e_j sim(j, c)
(e_j: the user's item evidence, base.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from indexing import topk
from indexing.rowsums import RowSums
from indexing.sources.base import Rows, Source, Summed, Training, User, because, mean_support

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion


def cosine(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """Top-`k` shrunk cosine neighbours of each item (no item is its own neighbour).

    Only pairs that share a user have a similarity above 0, so the co-occurrence counts
    X_i . X_j are formed as a sparse product, a block of items at a time (blocks sized by
    their co-occurrences, not the catalog), and each row keeps its `k` best by one sort
    of the block's entries: the work grows with the co-occurring pairs, not n_items^2.
    """
    n_items = x.shape[1]
    by_item = sp.csr_matrix(x.T, dtype=np.float32)
    norms = np.sqrt(np.asarray(by_item.multiply(by_item).sum(axis=1), dtype=np.float32).ravel())
    transposed = sp.csr_matrix(by_item.T)
    # An upper bound of each item's co-occurring pairs: sum over its users of their lengths.
    user_lengths = np.diff(transposed.indptr).astype(np.float64)
    per_item = sp.csr_matrix(
        (user_lengths[by_item.indices], by_item.indices, by_item.indptr), shape=by_item.shape
    ).sum(axis=1)
    bounds = np.cumsum(np.asarray(per_item, dtype=np.float64).ravel())
    blocks: list[sp.csr_matrix] = []
    start = 0
    while start < n_items:
        # Up to about topk.BLOCK_PAIRS co-occurrences per block (at least one item).
        limit = (bounds[start - 1] if start else 0.0) + topk.BLOCK_PAIRS
        stop = max(start + 1, int(np.searchsorted(bounds, limit, side="right")))
        stop = min(stop, n_items)
        counts = sp.csr_matrix(by_item[start:stop] @ transposed)
        row = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(counts.indptr))
        col = counts.indices.astype(np.int64)
        sims = counts.data / (norms[row] * norms[col] + shrink + 1e-9)
        keep = (row != col) & (sims > 0)
        row, col, sims = row[keep], col[keep], sims[keep].astype(np.float32)
        best = topk.best_per_row(row, col, sims, k, start, stop)
        blocks.append(topk.block(*best, start, stop, n_items))
        start = stop
    return topk.stacked(blocks, n_items)


class Cooccurrence(Source):
    name = "cooccurrence"
    fitted_with = ("item_evidence", "neighbours", "shrinkage")
    searched = ("shrinkage",)
    penalties = ("shrinkage",)

    def fit(self, training: Training) -> dict[str, Any]:
        settings = training.settings
        return {
            "neighbours": cosine(training.items, settings.neighbours, settings.shrinkage),
            "binary": training.binary,
        }

    def scorer(self, user: User, sums: RowSums) -> Summed | None:
        model = user.collaborative
        if model is None:
            return None
        return Summed.of(sums, model.neighbours, user.liked, user.items)

    def support(self, user: User) -> float:
        """Of all the user's items, weighted by their item evidence."""
        return mean_support(user.known, user.items)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        """The liked item whose neighbours hold `row` most strongly."""
        model = version.collaborative
        return because(version, row, liked, model.neighbours if model is not None else None)
