"""recent: what goes with the user's latest tastes.

    score(c) = sum over the `recent_items` newest positive items j, the k-th newest weighted
               0.5 ** (k / (recent_items / 2)), of e_j B[j, c]
with B the EASE weights (ease.py), or the shrunk cosine sim(j, c) (cooccurrence.py) where
EASE does not cover j. It reads the models the others fitted, and fits none of its own; its
weight is the same whatever the user's history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from indexing.rowsums import RowSums
from indexing.sources.base import Rows, Source, Summed, User, because, mean_support

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion


class Recent(Source):
    name = "recent"
    cold = "steady"

    def scorer(self, user: User, sums: RowSums) -> Summed | None:
        model = user.collaborative
        if model is None:
            return None
        which = sums.take()
        rows, weights = user.recent, user.newest
        covered = model.in_ease[rows]
        sums.add(which, model.ease, rows[covered], weights[covered])
        if not covered.all():
            sums.add(which, model.neighbours, rows[~covered], weights[~covered])
        return Summed(sums, which)

    def support(self, user: User) -> float:
        """Of the newest items, weighted as they are weighed."""
        return mean_support(user.known[: len(user.recent)], user.newest)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        """The recent item whose EASE row weighs `row` most."""
        model = version.collaborative
        return because(version, row, recent, model.ease if model is not None else None)
