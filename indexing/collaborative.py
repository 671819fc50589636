"""The models a version's sources serve from, fitted at build time (indexing/fitting.py):
implicit ALS, EASE, the shrunk item-item cosine and what follows what (each source's module
in indexing/sources/ says what it fits and cites its paper).

All learn from every positive interaction, whatever its type. The evidence of a (user,
item) pair is e = w * 0.5 ** (age / half_life) when its net weight w is above 0
(indexing/profiles.py, `evidence`; no decay with half_life 0): a view, two views, a
purchase, a rating of 4 all count, more the heavier, the more repeated and the more recent.
X is the users x items matrix of that evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from indexing import ann

Floats = npt.NDArray[np.float32]


@dataclass
class Collaborative:
    """What a version serves of the collaborative models (saved and read as one, by
    indexing/artifacts.py)."""

    factor_index: Any  # FAISS inner-product index over the ALS item factors Y, (n_items, f)
    neighbours: sp.csr_matrix  # (n_items, n_items) float32, top-k shrunk cosine per row
    ease: sp.csr_matrix  # (n_items, n_items) float32, top-k EASE weights per row
    following: sp.csr_matrix  # (n_items, n_items) float32, top-k next(j, i) per row j
    regularization: float
    alpha: float
    half_life_days: float = 0.0  # of the evidence (indexing/profiles.py); 0: no decay
    # The item-item models and row sums count each positive pair as 1 (`item_evidence`).
    binary: bool = False
    # How long each source's model took to fit, by source name (the build's tuning plans
    # its refits by it); empty for a model read from disk.
    fit_seconds: dict[str, float] = field(default_factory=dict)
    item_factors: Floats = field(init=False)  # a view into factor_index's storage
    gram: npt.NDArray[np.float64] = field(init=False)  # Y^T Y, (f, f)
    in_ease: npt.NDArray[np.bool_] = field(init=False)  # items with EASE weights, (n_items,)

    def __post_init__(self) -> None:
        self.item_factors = ann.vectors_of(self.factor_index)
        y = self.item_factors.astype(np.float64)
        self.gram = y.T @ y
        self.in_ease = np.diff(self.ease.indptr) > 0

    def item_evidence(self, evidence: Floats) -> Floats:
        """A user's row of the X the item-item models learned from: their evidence, or 1
        for each positive item."""
        return np.ones_like(evidence) if self.binary else evidence
