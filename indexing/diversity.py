"""Reordering a ranked list for variety: maximal marginal relevance and a per-category cap.

MMR (Carbonell & Goldstein, SIGIR 1998) picks, one at a time, the item that maximises
    lambda * relevance(i) - (1 - lambda) * max_{s already picked} similarity(i, s)
with relevance min-max scaled to [0, 1] over the list and similarity the cosine of item
vectors. lambda = 1 keeps the relevance order. With a cap, an item whose category already
holds `max_per_category` picks waits until nothing else is left.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from embeddings.encoder import Vectors

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


def rerank(
    rows: Rows,
    relevance: Floats,
    vectors: Vectors,
    categories: npt.NDArray[np.int32],
    *,
    lam: float,
    max_per_category: int | None = None,
) -> npt.NDArray[np.int64]:
    """The positions of `rows` in their new order (a permutation of range(len(rows)))."""
    n = len(rows)
    if n == 0 or (lam >= 1.0 and max_per_category is None):
        return np.arange(n, dtype=np.int64)
    spread = float(relevance.max() - relevance.min())
    scaled = (relevance - relevance.min()) / spread if spread > 0 else np.ones(n)
    similarity = vectors[rows] @ vectors[rows].T
    closest = np.full(n, -np.inf)  # max similarity to anything picked so far
    left = np.ones(n, dtype=bool)
    per_category: dict[int, int] = {}
    codes = categories[rows]
    order: list[int] = []
    while len(order) < n:
        gain = lam * scaled - (1.0 - lam) * np.where(np.isfinite(closest), closest, 0.0)
        gain = np.where(left, gain, -np.inf)
        if max_per_category is not None:
            full = np.array(
                [c >= 0 and per_category.get(int(c), 0) >= max_per_category for c in codes]
            )
            if np.any(left & ~full):
                gain = np.where(full, -np.inf, gain)
        pick = int(np.argmax(gain))  # first of equal gains: the more relevant position
        order.append(pick)
        left[pick] = False
        closest = np.maximum(closest, similarity[pick])
        code = int(categories[rows[pick]])
        per_category[code] = per_category.get(code, 0) + 1
    return np.array(order, dtype=np.int64)
