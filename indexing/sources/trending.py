"""trending: what the crowd is choosing now.

    score(c) = log(1 + s_c)
s_c the served trending score (indexing/trending.py), or build-time popularity where none is
served; its candidates are the best of that list. Its counts run over orders of magnitude,
so it is standardised on a log scale; and since the served scores are the window's, whose
spread is not the one the build measured on popularity, it is weighed by support alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexing.rowsums import RowSums
from indexing.sources.base import Floats, Rows, Source, Trend, User, mean_support
from indexing.subsets import Subset

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion


class Trending(Source):
    name = "trending"
    cold = "own"
    spread_weighed = False

    def scorer(self, user: User, sums: RowSums) -> Listed | None:
        return Listed(user.trending) if user.trending is not None else None

    def support(self, user: User) -> float:
        """Of all the user's items, weighted by their item evidence: a user whose likes few
        others share is no mainstream user, and the crowd's choice says less of them."""
        return mean_support(user.known, user.items)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        code = int(version.item_category[row])
        return f"trending in {version.category_names[code]}" if code >= 0 else "trending now"

    def shaped(self, values: Floats) -> Floats:
        """On a log scale: standardised as counts, a few blockbusters stood five deviations
        above every other candidate, whatever the user liked."""
        return np.log1p(np.maximum(values, 0.0)).astype(np.float32)


@dataclass(frozen=True)
class Listed:
    """Scores read off the trending list."""

    trend: Trend

    def propose(self, k: int, among: Subset | None) -> Rows:
        return self.trend.top(k, among)

    def scores(self, rows: Rows) -> Floats:
        return self.trend.scores[rows]
