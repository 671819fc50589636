"""The hybrid ranker: candidates from several sources, blended, pushed, diversified.

Sources, each a score per candidate item c for user u (indexing/collaborative.py fits them):
  content        cos(v_u, e_c): the user's taste vector against the item's embedding
  collaborative  x_u . y_c: ALS factors, x_u solved from the user's positive items
  ease           sum over positive items j of e_j B[j, c]: EASE item-item weights
  cooccurrence   sum over positive items j of e_j sim(j, c): shrunk item-item cosine
  recent         sum over the user's `recent_items` newest positive items j, the k-th newest
                 weighted 0.5 ** (k / (recent_items / 2)), of e_j B[j, c] (e_j sim(j, c)
                 where EASE does not cover j): what goes with the latest tastes
  sequence       the same newest items, weighted alike, of e_j next(j, c): what other users
                 went on to after them
(e_j: the evidence of the user's item j, indexing/profiles.py)
  trending       the served trending score (or build-time popularity when none is served)
Candidates are the union of each source's top `depth` items. Each source's scores are
standardised over the candidates, z = (s - mean) / std (0 where a source is flat), so one
noisy maximum cannot squeeze every other score towards 0 as min-max scaling would. Then
  score(c) = b(c) - negative_weight * push(c) * (max b - min b),  b(c) = sum_k w_k(n) * z_k(c)
  w_k(n)   = h * rich_k + (1 - h) * cold_k,  h = n / (n + adapt_at),  n = positive items
so with little history content and trending lead, and with a rich one the collaborative
sources do; each build chooses the weights on its own holdout (indexing/tuning.py).
push(c) = max(0, max_d cos(e_c, e_d) - max(0, max_j cos(e_c, e_j))) over disliked or hidden
items d and the newest PUSH_LIKED positive items j: items more like what the user rejected
than like anything they liked sink, not only the rejected items themselves, while a disliked
film does not sink a genre the user otherwise loves. With negative_weight 1, an item as close
as can be to a rejected one and unlike any liked one sinks by the whole spread of the list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.settings import RankingSettings
from indexing import ann, diversity, rowsums
from indexing.artifacts import IndexVersion

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
SOURCES = (
    "content",
    "collaborative",
    "ease",
    "cooccurrence",
    "recent",
    "sequence",
    "trending",
)
# The newest positive items a candidate's closeness to rejected items is weighed against.
PUSH_LIKED = 20


@dataclass(frozen=True)
class Blend:
    """Per-candidate scores of one user's list, before diversification."""

    rows: Rows
    raw: dict[str, Floats]  # source -> raw score per candidate
    scaled: dict[str, Floats]  # source -> standardised score per candidate
    push: Floats  # closeness to rejected items
    weights: dict[str, float]
    total: Floats


def weights_for(settings: RankingSettings, liked: int) -> dict[str, float]:
    """Each source's weight for a user with `liked` positive items (see the docstring)."""
    h = liked / (liked + settings.adapt_at)
    cold = cold_weights(settings)
    return {k: h * rich_weight(settings, k) + (1.0 - h) * cold.get(k, 0.0) for k in SOURCES}


def cold_weights(settings: RankingSettings) -> dict[str, float]:
    """The weights of the sources that count for a user with no positive items yet (the
    others count nothing then)."""
    return {
        "content": settings.cold_content_weight,
        "recent": settings.recent_weight,
        "sequence": settings.sequence_weight,
        "trending": settings.cold_trending_weight,
    }


def rich_weight(settings: RankingSettings, source: str) -> float:
    weight: float = getattr(settings, f"{source}_weight")
    return weight


def recent_weights(count: int, settings: RankingSettings) -> Floats:
    k = np.arange(count, dtype=np.float32)
    weights: Floats = np.power(0.5, k / (settings.recent_items / 2.0)).astype(np.float32)
    return weights


def standardised(values: Floats) -> Floats:
    """(values - mean) / std over the candidates; zeros where the values do not vary."""
    if len(values) == 0:
        return values.astype(np.float32)
    spread = float(values.std())
    if spread <= 1e-9:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - float(values.mean())) / spread).astype(np.float32)


@dataclass(frozen=True)
class Trend:
    """The trending score per item row, and the rows scoring above 0 best first: a
    request's trending candidates are a slice, not a scan of the catalog. `by_category`,
    where given, gives those of one category, best first (sorted once, as `best` is)."""

    scores: Floats
    best: Rows
    by_category: Callable[[str], Rows] | None = None

    def top(
        self,
        k: int,
        category: str | None = None,
        member: Callable[[Rows], npt.NDArray[np.bool_]] | None = None,
    ) -> Rows:
        """The best `k` rows, or the best `k` of a category (`member` says which rows are
        in it)."""
        if category is None:
            return self.best[:k]
        if self.by_category is not None:
            return self.by_category(category)[:k]
        # A served trending list is at most trending.TOP rows: filtering it is a slice too.
        assert member is not None, "a category's trending rows need its members"
        return self.best[member(self.best)][:k]

    @classmethod
    def of(cls, scores: Floats) -> Trend:
        """Sorts once: hold the result while the scores hold."""
        scores = np.asarray(scores, dtype=np.float32)
        positive = np.flatnonzero(scores > 0)
        return cls(scores, positive[np.lexsort((positive, -scores[positive]))].astype(np.int64))


# The sources scored by a row sum over the user's items, and their accumulator in RowSums.
ROW_SUMS = ("ease", "cooccurrence", "recent", "sequence")


def blend(
    version: IndexVersion,
    settings: RankingSettings,
    *,
    taste: Floats | None,
    liked: Rows,
    evidence: Floats,
    rejected: Rows,
    trending: Trend,
    depth: int,
    category: str | None = None,
    excluded: Collection[int] = (),
    only: Rows | None = None,
) -> Blend:
    """Score the user's candidates (or exactly the rows in `only`) from every source.

    `liked` are the user's positive items, newest first, and `evidence` their strength.
    The work grows with the user's history and `depth`, not with the catalog: the row sums
    touch only their rows' entries (indexing/rowsums.py), the trending candidates are a
    slice of a list sorted once, and everything else is read at the candidates alone.
    """
    n_items = len(version.item_ids)
    with rowsums.scratch(n_items, len(ROW_SUMS)) as sums:
        collab = version.collaborative
        has_taste = taste is not None and bool(np.any(taste))
        summed = False  # whether the ROW_SUMS sources scored this user's items
        factors = None
        if collab is not None and len(liked):
            factors = collab.user_factors(liked, evidence)
            collab.ease_scores(sums, 0, liked, evidence)
            collab.neighbour_scores(sums, 1, liked, evidence)
            recent = liked[: settings.recent_items]
            newest = recent_weights(len(recent), settings) * evidence[: len(recent)]
            collab.item_item_scores(sums, 2, recent, newest)
            collab.following_scores(sums, 3, recent, newest)
            summed = True

        if only is not None:
            rows = np.asarray(only, dtype=np.int64)
        elif category is not None and category not in version.category_rows:
            rows = np.zeros(0, dtype=np.int64)
        else:
            # Each source's best `k`, within the category if one is asked for: the searches
            # are kept to its items and the sums read only their touched columns in it, so
            # a category's list costs what any list does, whatever the category's size.
            k = depth + len(excluded)
            member: Callable[[Rows], npt.NDArray[np.bool_]] | None = None
            if category is not None:
                code = version.category_code[category]

                def in_category(columns: Rows) -> npt.NDArray[np.bool_]:
                    inside: npt.NDArray[np.bool_] = version.item_category[columns] == code
                    return inside

                member = in_category
            found: list[Rows] = [trending.top(k, category, member)]
            if summed:
                found += [sums.top(which, k, member) for which in range(len(ROW_SUMS))]
            searches = []
            if has_taste:
                assert taste is not None
                searches.append((version.item_index, taste))
            if factors is not None and collab is not None and np.any(factors):
                searches.append((collab.factor_index, factors))
            for index, query in searches:
                if category is None:
                    _, hits = ann.search(index, query[None, :], k)
                    found.append(hits[0][hits[0] >= 0].astype(np.int64))
                else:
                    found.append(version.nearest_in(index, query, k, category)[1])
            rows = np.unique(np.concatenate(found))
        if len(excluded) and len(rows):
            rows = rows[~np.isin(rows, _as_rows(excluded))]
        rows = rows[rows < n_items]

        zeros = np.zeros(len(rows), dtype=np.float32)
        raw = {source: zeros for source in SOURCES}
        if summed:
            for which, source in enumerate(ROW_SUMS):
                raw[source] = sums.sums[which][rows]
        raw["trending"] = trending.scores[rows]
        if has_taste and taste is not None:
            raw["content"] = version.item_vectors[rows] @ taste
        if collab is not None and factors is not None:
            raw["collaborative"] = collab.item_factors[rows] @ factors
        scaled = {k: standardised(v) for k, v in raw.items()}
        push = zeros
        if len(rejected) and len(rows):
            candidates = version.item_vectors[rows]
            closest = (candidates @ version.item_vectors[rejected].T).max(axis=1)
            if len(liked):
                kept = liked[:PUSH_LIKED]
                closest -= np.maximum((candidates @ version.item_vectors[kept].T).max(axis=1), 0.0)
            push = np.maximum(closest, 0.0).astype(np.float32)
        weights = weights_for(settings, len(liked))
        return Blend(rows, raw, scaled, push, weights, combine(scaled, push, weights, settings))


def _as_rows(rows: Collection[int]) -> Rows:
    if isinstance(rows, np.ndarray):
        return rows.astype(np.int64, copy=False)
    return np.fromiter(rows, dtype=np.int64, count=len(rows))


def combine(
    scaled: dict[str, Floats], push: Floats, weights: dict[str, float], settings: RankingSettings
) -> Floats:
    """sum_k w_k z_k, less negative_weight * push * (the spread of that sum over the list)."""
    total = np.zeros(len(push), dtype=np.float32)
    for source in SOURCES:
        if weights[source]:
            total += np.float32(weights[source]) * scaled[source]
    if settings.negative_weight and len(total) and push.any():
        spread = float(total.max() - total.min()) or 1.0
        total -= np.float32(settings.negative_weight * spread) * push
    return total


def ranked(
    version: IndexVersion, settings: RankingSettings, blended: Blend, depth: int
) -> tuple[Rows, Floats]:
    """The best `depth` candidates, best first (ties by row), then diversified."""
    order = np.lexsort((blended.rows, -blended.total))[:depth]
    rows, scores = blended.rows[order], blended.total[order]
    diverse = diversity.rerank(
        rows,
        scores,
        version.item_vectors,
        version.item_category,
        lam=settings.mmr_lambda,
        max_per_category=settings.max_per_category,
    )
    return rows[diverse], scores[diverse]
