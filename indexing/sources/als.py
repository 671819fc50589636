"""collaborative: implicit ALS, the user's factors against each item's.

Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets" (ICDM
2008), fitted with the `implicit` package on confidences c = 1 + alpha * e (e: the evidence
of each positive pair). Item factors Y (n_items x f) are served from a FAISS inner-product
index; a user's factors are solved from their current positive items, so a user who acted a
moment ago is scored with their current history, not the one the build saw:
    x_u = (Y^T Y + reg I + sum_{i in X_u} (c_i - 1) y_i y_i^T)^-1  sum_{i in X_u} c_i y_i
    score(c) = x_u . y_c
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from common.settings import CollaborativeSettings
from indexing import ann
from indexing.rowsums import RowSums
from indexing.sources.base import (
    Floats,
    Inner,
    Rows,
    Source,
    Training,
    User,
    mean_support,
    positive_part,
)

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion
    from indexing.collaborative import Collaborative


def als(evidence: sp.csr_matrix, settings: CollaborativeSettings) -> Floats:
    """Item factors (n_items, f) fitted on confidences 1 + alpha * evidence."""
    n_users, n_items = evidence.shape
    positive = positive_part(evidence)
    if positive.nnz == 0 or n_users < 2:
        return np.zeros((n_items, settings.factors), dtype=np.float32)
    from implicit.cpu.als import AlternatingLeastSquares

    confidence = positive.copy()
    confidence.data = 1.0 + settings.alpha * confidence.data
    # implicit warns (and runs slower) when BLAS runs threads inside its own threads.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=settings.factors,
            regularization=settings.regularization,
            alpha=1.0,  # the confidences above already carry alpha
            iterations=settings.iterations,
            random_state=settings.seed,
        )
        model.fit(confidence, show_progress=False)
    return np.ascontiguousarray(model.item_factors, dtype=np.float32)


def user_factors(model: Collaborative, rows: Rows, evidence: Floats | None = None) -> Floats:
    """x_u, shape (f,), from a user's positive items' rows and evidence (1 each where none
    is given)."""
    f = model.item_factors.shape[1]
    if len(rows) == 0:
        return np.zeros(f, dtype=np.float32)
    if evidence is None:
        evidence = np.ones(len(rows), dtype=np.float32)
    confidence = 1.0 + model.alpha * evidence.astype(np.float64)
    y = model.item_factors[rows].astype(np.float64)
    a = model.gram + model.regularization * np.eye(f) + (y.T * (confidence - 1.0)) @ y
    b = confidence @ y
    return np.linalg.solve(a, b).astype(np.float32)


class Als(Source):
    name = "collaborative"
    fitted_with = ("factors", "regularization", "alpha", "iterations")
    searched = ("factors", "regularization", "alpha")

    def fit(self, training: Training) -> dict[str, Any]:
        settings = training.settings
        return {
            "factor_index": ann.build(als(training.positive, settings), training.index),
            "regularization": settings.regularization,
            "alpha": settings.alpha,
        }

    def scorer(self, user: User, sums: RowSums) -> Inner | None:
        model = user.collaborative
        if model is None:
            return None
        factors = user_factors(model, user.liked, user.evidence)
        return Inner(user.version, model.factor_index, model.item_factors, factors)

    def support(self, user: User) -> float:
        """Of all the user's items, weighted by their evidence."""
        return mean_support(user.known, user.evidence)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        return "popular with people like you"
