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
Candidates are the union of each source's top `depth` items. Each source's scores (trending's
as log(1 + s)) are standardised over the candidates, z = (s - mean) / std (0 where a source
is flat), so one noisy maximum cannot squeeze every other score towards 0 as min-max
scaling would. A
standardised score is as loud for a user the source knows little of as for one it knows
well, so each is then weighed by the source's trust in this user,
  t_k = support_k * min(1, std_k / spread_k)
support_k = min(1, s_k / typical s_k): s_k is the mean `item_support` (u / (u + SUPPORT_USERS),
u the item's users) of the user's items that source k read, weighted as it weighed them (0
for an item EASE does not cover): the rows of items a handful of people share say little.
Trending's is that of all the user's items (a user who likes what few others like is served
less by what most do); content's is 1. It counts next to the typical user's, the median over
the build's users (`ranking.typical`): on a catalog where every item has few users, the
blend was chosen on users like that, and only those well below them are thin.
spread_k: the median std of source k's scores over the build's users' candidates: a source
whose scores barely move for this user, next to how they move for a typical one, is not
made as loud (trending, whose served scores are the window's, is weighed by support alone).
Then
  score(c) = b(c) - negative_weight * push(c) * (max b - min b),  b(c) = sum_k w_k t_k z_k(c)
  w_k      = h * rich_k + (1 - h) * cold_k,  h = n / (n + adapt_at)
where n is the user's supported positive items, the sum of their `item_support`: so with
little evidence (few items, or items few people share) content and trending lead, and with
much the collaborative sources do; each build chooses the weights on its own holdout
(indexing/tuning.py), with users cut to their newest few items among those it judges by.
What the sources that speak from other users cannot say for lack of support goes to
content, as far as the build found content informative (`content_informative`, i in
[0, 1]):
  w_content += i * sum over k in FROM_OTHERS of w_k * (1 - support_k)
so a new user whose few likes only a handful of people share is carried by what those
items are, not by the noise of who else had them; on a catalog whose texts say nothing,
nothing moves.
push(c) = max(0, max_d cos(e_c, e_d) - max(0, max_j cos(e_c, e_j))) over disliked or hidden
items d and the newest PUSH_LIKED positive items j: items more like what the user rejected
than like anything they liked sink, not only the rejected items themselves, while a disliked
film does not sink a genre the user otherwise loves. With negative_weight 1, an item as close
as can be to a rejected one and unlike any liked one sinks by the whole spread of the list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
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
# The sources that speak from what other users did: the collaborative ones read the user's
# items through it, and trending is the crowd's own choice.
FROM_OTHERS = ("collaborative", "ease", "cooccurrence", "recent", "sequence", "trending")
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
    trust: dict[str, float]  # source -> the factor its standardised scores were weighed by
    support: dict[str, float]  # source in FROM_OTHERS -> its support (relative), as weighed


def weights_for(
    settings: RankingSettings,
    liked: float,
    support: Mapping[str, float] | None = None,
    informative: float = 0.0,
) -> dict[str, float]:
    """Each source's weight for a user with `liked` supported positive items, and the
    (relative) `support` of each source in FROM_OTHERS (see the docstring)."""
    h = liked / (liked + settings.adapt_at)
    cold = cold_weights(settings)
    weights = {k: h * rich_weight(settings, k) + (1.0 - h) * cold.get(k, 0.0) for k in SOURCES}
    if support and informative > 0:
        lost = sum(weights[k] * (1.0 - support.get(k, 1.0)) for k in FROM_OTHERS)
        weights["content"] += informative * lost
    return weights


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


def shaped(source: str, values: Floats) -> Floats:
    """A source's scores as they are standardised: popularity on a log scale, whose counts
    run over orders of magnitude (standardised as counts, a few blockbusters stood five
    deviations above every other candidate, whatever the user liked); the others as they
    are."""
    if source == "trending":
        return np.log1p(np.maximum(values, 0.0)).astype(np.float32)
    return values


def trusted(values: Floats, typical: float | None, support: float) -> tuple[Floats, float]:
    """`standardised(values)` weighed by the source's trust in this user (the docstring's
    t_k), and that trust. No typical spread (a version built before one was measured):
    support alone."""
    loud = 1.0
    if typical:
        loud = min(1.0, float(values.std()) / typical) if len(values) else 0.0
    trust = support * loud
    return standardised(values) * np.float32(trust), trust


def supports(
    version: IndexVersion, settings: RankingSettings, liked: Rows, evidence: Floats
) -> dict[str, float]:
    """Each source in FROM_OTHERS's support for a user: the mean `item_support` of the
    items it reads, weighted as it weighs them (the docstring's support_k, before it is
    taken relative to the typical user's)."""
    collab = version.collaborative
    if collab is None or not len(liked):
        return {}
    items = collab.item_evidence(evidence)
    recent = min(len(liked), settings.recent_items)
    newest = recent_weights(recent, settings) * items[:recent]
    known = version.item_support[liked]
    return {
        "ease": _mean_support(known * collab.in_ease[liked], items),
        "cooccurrence": _mean_support(known, items),
        "collaborative": _mean_support(known, evidence),
        "recent": _mean_support(known[:recent], newest),
        "sequence": _mean_support(known[:recent], newest),
        # A user whose likes few others share is no mainstream user: the crowd's choice
        # says less of them.
        "trending": _mean_support(known, items),
    }


def relative_support(version: IndexVersion, found: Mapping[str, float]) -> dict[str, float]:
    """`supports` as a share of the typical user's, at most 1 (1 where the version knows
    no typical support: one built before it was measured)."""
    typical = version.typical.get("support", {})
    return {
        source: min(1.0, value / typical[source]) if typical.get(source) else 1.0
        for source, value in found.items()
    }


def supported(version: IndexVersion, liked: Rows) -> float:
    """The user's positive items, each counted by its `item_support`: `h`'s n."""
    return float(version.item_support[liked].sum()) if len(liked) else 0.0


def _mean_support(support: Floats, weights: Floats) -> float:
    """The mean of the items' `support`, weighted by `weights` (1 with none to weigh)."""
    total = float(weights.sum())
    return float(support @ weights) / total if total > 0 else 1.0


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
        support: dict[str, float] = {}
        if collab is not None and len(liked):
            factors = collab.user_factors(liked, evidence)
            items = collab.item_evidence(evidence)
            collab.ease_scores(sums, 0, liked, items)
            collab.neighbour_scores(sums, 1, liked, items)
            recent = liked[: settings.recent_items]
            newest = recent_weights(len(recent), settings) * items[: len(recent)]
            collab.item_item_scores(sums, 2, recent, newest)
            collab.following_scores(sums, 3, recent, newest)
            summed = True
            support = relative_support(version, supports(version, settings, liked, evidence))

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
        # A version built before the typical user was measured is served as it was tuned:
        # plain z-scores, and its rich and cold weights by the count of positive items.
        legacy = not version.typical
        spread = version.typical.get("spread", {})
        scaled, trust = {}, {}
        for source, values in raw.items():
            scaled[source], trust[source] = trusted(
                values if legacy else shaped(source, values),
                # The served trending scores are the window's, whose spread is not the one
                # its build measured on popularity: trending is weighed by support alone.
                None if source == "trending" else spread.get(source),
                support.get(source, 1.0),
            )
        push = zeros
        if len(rejected) and len(rows):
            candidates = version.item_vectors[rows]
            closest = (candidates @ version.item_vectors[rejected].T).max(axis=1)
            if len(liked):
                kept = liked[:PUSH_LIKED]
                closest -= np.maximum((candidates @ version.item_vectors[kept].T).max(axis=1), 0.0)
            push = np.maximum(closest, 0.0).astype(np.float32)
        evidence_count = float(len(liked)) if legacy else supported(version, liked)
        weights = weights_for(settings, evidence_count, support, version.content_informative)
        total = combine(scaled, push, weights, settings)
        return Blend(rows, raw, scaled, push, weights, total, trust, support)


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
