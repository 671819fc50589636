"""The hybrid ranker: candidates from several sources, blended, pushed, diversified.

The sources are registered in indexing/sources/__init__.py, one module each, and each module
gives its score per candidate item c for user u:
  content        cos(v_u, e_c): the user's taste vector against the item's embedding
  collaborative  x_u . y_c: ALS factors, x_u solved from the user's positive items
  ease           sum over positive items j of e_j B[j, c]: EASE item-item weights
  cooccurrence   sum over positive items j of e_j sim(j, c): shrunk item-item cosine
  recent         the newest positive items' EASE (or cosine) rows, the newest weighed most:
                 what goes with the latest tastes
  sequence       the same newest items, weighted alike, of e_j next(j, c): what other users
                 went on to after them
  trending       the served trending score (or build-time popularity when none is served)
(e_j: the evidence of the user's item j, indexing/profiles.py)
Candidates are the union of each source's top `depth` items. Each source's scores (trending's
as log(1 + s), `Source.shaped`) are standardised over the candidates, z = (s - mean) / std
(0 where a source is flat), so one noisy maximum cannot squeeze every other score towards 0
as min-max scaling would. A standardised score is as loud for a user the source knows
little of as for one it knows well, so each is then weighed by the source's trust in this
user,
  t_k = support_k * min(1, std_k / spread_k)
support_k = min(1, s_k / typical s_k): s_k is the mean `item_support` (u / (u + SUPPORT_USERS),
u the item's users) of the user's items that source k read, weighted as it weighed them
(`Source.support`): the rows of items a handful of people share say little. Content's is 1.
It counts next to the typical user's, the median over the build's users
(`ranking.typical`): on a catalog where every item has few users, the blend was chosen on
users like that, and only those well below them are thin.
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

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.settings import RankingSettings
from indexing import diversity, rowsums, sources
from indexing.artifacts import IndexVersion
from indexing.sources.base import Scorer, User
from indexing.sources.base import Trend as Trend
from indexing.subsets import Subset

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
SOURCES = sources.NAMES
# The sources that speak from what other users did: the collaborative ones read the user's
# items through it, and trending is the crowd's own choice.
FROM_OTHERS = sources.FROM_OTHERS
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
        source.name: getattr(settings, source.cold_weight)
        for source in sources.REGISTRY
        if source.cold_weight is not None
    }


def rich_weight(settings: RankingSettings, source: str) -> float:
    weight: float = getattr(settings, sources.named(source).weight)
    return weight


def shaped(source: str, values: Floats) -> Floats:
    """A source's scores as they are standardised (`Source.shaped`)."""
    return sources.named(source).shaped(values)


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
    """Each source in FROM_OTHERS's support for a user (`Source.support`: the docstring's
    support_k, before it is taken relative to the typical user's)."""
    return _supports(User(version, settings, liked, evidence))


def _supports(user: User) -> dict[str, float]:
    if user.collaborative is None:
        return {}
    return {source.name: source.support(user) for source in sources.REGISTRY if source.from_others}


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


def standardised(values: Floats) -> Floats:
    """(values - mean) / std over the candidates; zeros where the values do not vary."""
    if len(values) == 0:
        return values.astype(np.float32)
    spread = float(values.std())
    if spread <= 1e-9:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - float(values.mean())) / spread).astype(np.float32)


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
    among: Subset | None = None,
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
    user = User(version, settings, liked, evidence, taste, trending)
    with rowsums.scratch(n_items) as sums:
        scorers = {source.name: source.scorer(user, sums) for source in sources.REGISTRY}
        support = relative_support(version, _supports(user))
        if only is not None:
            rows = np.asarray(only, dtype=np.int64)
        else:
            rows = _candidates(scorers, depth + len(excluded), among)
        if len(excluded) and len(rows):
            rows = rows[~np.isin(rows, _as_rows(excluded))]
        rows = rows[rows < n_items]

        zeros = np.zeros(len(rows), dtype=np.float32)
        raw = {
            name: scorer.scores(rows) if scorer is not None else zeros
            for name, scorer in scorers.items()
        }
    # A version built before the typical user was measured is served as it was tuned:
    # plain z-scores, and its rich and cold weights by the count of positive items.
    legacy = not version.typical
    spread = version.typical.get("spread", {})
    scaled, trust = {}, {}
    for source in sources.REGISTRY:
        values = raw[source.name]
        scaled[source.name], trust[source.name] = trusted(
            values if legacy else source.shaped(values),
            spread.get(source.name) if source.spread_weighed else None,
            support.get(source.name, 1.0),
        )
    push = _push(version, rows, liked, rejected)
    evidence_count = float(len(liked)) if legacy else supported(version, liked)
    weights = weights_for(settings, evidence_count, support, version.content_informative)
    total = combine(scaled, push, weights, settings)
    return Blend(rows, raw, scaled, push, weights, total, trust, support)


def _candidates(scorers: Mapping[str, Scorer | None], k: int, among: Subset | None) -> Rows:
    """Each source's best `k`, within the subset where one is asked for: the searches are
    kept to its items and the sums read only their touched columns in it, so a subset's
    list costs what any list does, whatever its size (indexing/subsets.py)."""
    found = [scorer.propose(k, among) for scorer in scorers.values() if scorer is not None]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def _push(version: IndexVersion, rows: Rows, liked: Rows, rejected: Rows) -> Floats:
    """Each candidate's push(c) (see the docstring)."""
    if not (len(rejected) and len(rows)):
        return np.zeros(len(rows), dtype=np.float32)
    candidates = version.item_vectors[rows]
    closest = (candidates @ version.item_vectors[rejected].T).max(axis=1)
    if len(liked):
        kept = liked[:PUSH_LIKED]
        closest -= np.maximum((candidates @ version.item_vectors[kept].T).max(axis=1), 0.0)
    push: Floats = np.maximum(closest, 0.0).astype(np.float32)
    return push


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
