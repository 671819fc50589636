"""Reference recommenders the evaluation compares the hybrid with, fitted on the same split.

All learn from a binary matrix X (users x items) of training pairs, and score every item for
the users asked for; training items are excluded by the caller.
  Pop      score(i) = number of users with i
  ItemKNN  score(u, i) = sum_{j in X_u} cos(j, i), each item keeping its `k` nearest
           neighbours (Sarwar et al., WWW 2001)
  EASE     B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1; score(u) = X_u B
           (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019), dense
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from indexing.sources.cooccurrence import cosine
from indexing.sources.ease import spd_inverse_lower

Scores = npt.NDArray[np.float32]


def pop(x: sp.csr_matrix) -> Scores:
    """(n_items,) counts, the same list for everyone."""
    return np.asarray(x.sum(axis=0), dtype=np.float32).ravel()


def item_knn(x: sp.csr_matrix, users: list[int], k: int = 100) -> Scores:
    """(len(users), n_items) scores."""
    return item_knn_for(x, x[users], k)


def item_knn_for(x: sp.csr_matrix, queries: sp.csr_matrix, k: int = 100) -> Scores:
    """Scores for rows of items other than X's own (an anonymous session's, say), with the
    neighbours learnt from X."""
    return np.asarray((queries @ cosine(x, k, 0.0)).todense(), dtype=np.float32)


def ease(x: sp.csr_matrix, users: list[int], lam: float = 500.0) -> Scores:
    """(len(users), n_items) scores from the full dense B (items no one has are left out)."""
    return ease_for(x, x[users], lam)


def ease_for(x: sp.csr_matrix, queries: sp.csr_matrix, lam: float = 500.0) -> Scores:
    """Scores for rows of items other than X's own, with B learnt from X."""
    n_items = x.shape[1]
    active = np.flatnonzero(np.asarray(x.sum(axis=0)).ravel() > 0)
    sub = sp.csr_matrix(x[:, active], dtype=np.float32)
    gram = (sub.T @ sub).toarray().astype(np.float32)
    gram[np.diag_indices_from(gram)] += lam
    lower = spd_inverse_lower(gram)
    inverse = np.tril(lower) + np.tril(lower, -1).T
    del lower, gram
    weights = inverse / -np.diag(inverse)[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    scores = np.zeros((queries.shape[0], n_items), dtype=np.float32)
    scores[:, active] = np.asarray(sp.csr_matrix(queries)[:, active] @ weights, dtype=np.float32)
    return scores


def top_k(scores: Scores, excluded: list[int], k: int) -> list[int]:
    """The best k rows of one score vector outside `excluded` (ties by row)."""
    masked = scores.astype(np.float64, copy=True)
    masked[excluded] = -np.inf
    best = np.argpartition(-masked, k)[:k] if len(masked) > k else np.arange(len(masked))
    return sorted(best.tolist(), key=lambda r: (-masked[r], r))
