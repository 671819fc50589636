"""Reference recommenders the evaluation compares the hybrid with, fitted on the same split.

All learn from the binary matrix X (users x items) of liked training pairs, and score every
item for a user; training items are excluded by the caller.
  Pop      score(i) = number of users who liked i
  ItemKNN  score(u, i) = sum_{j in X_u} cos(j, i), each item keeping its `k` nearest
           neighbours (Sarwar et al., WWW 2001)
  EASE     B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1; score(u) = X_u B
           (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from indexing.collaborative import cooccurrence

Scores = npt.NDArray[np.float64]


def pop(liked: sp.csr_matrix) -> Scores:
    """(n_items,) liked counts, the same list for everyone."""
    return np.asarray(liked.sum(axis=0), dtype=np.float64).ravel()


def item_knn(liked: sp.csr_matrix, k: int = 100) -> Scores:
    """(n_users, n_items) scores."""
    return np.asarray((liked @ cooccurrence(liked, k)).todense(), dtype=np.float64)


def ease(liked: sp.csr_matrix, lam: float = 500.0) -> Scores:
    """(n_users, n_items) scores; a dense n_items x n_items inverse, so for small catalogs."""
    gram = np.asarray((liked.T @ liked).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += lam
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)
    weights[np.diag_indices_from(weights)] = 0.0
    return np.asarray(liked @ weights, dtype=np.float64)


def top_k(scores: Scores, excluded: list[int], k: int) -> list[int]:
    """The best k rows of one score vector outside `excluded` (ties by row)."""
    masked = scores.astype(np.float64, copy=True)
    masked[excluded] = -np.inf
    best = np.argpartition(-masked, k)[:k] if len(masked) > k else np.arange(len(masked))
    return sorted(best.tolist(), key=lambda r: (-masked[r], r))
