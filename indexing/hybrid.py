"""The hybrid ranker: candidates from several sources, blended, pushed, diversified.

Sources, each a score per candidate item c for user u:
  content        cos(v_u, e_c): the user's taste vector against the item's embedding
  collaborative  x_u . y_c: ALS factors (x_u solved from the user's liked items)
  cooccurrence   sum over liked items j of sim(j, c): item-item co-occurrence cosine
  recent         the same sum over the user's `recent_items` newest liked items, the k-th
                 newest weighted 0.5 ** (k / (recent_items / 2))
  trending       the served trending score (or build-time popularity when none is served)
Candidates are the union of each source's top `depth` items. Each source's scores are min-max
scaled to [0, 1] over the candidates, then blended:
  score(c) = sum_k w_k(n) * scaled_k(c) - negative_weight * push(c)
  w_k(n)   = h * rich_k + (1 - h) * cold_k,  h = n / (n + adapt_at),  n = liked items
so with little history content and trending lead, and with a rich one the collaborative
sources do. push(c) = max over disliked or hidden items d of cos(e_c, e_d), scaled to [0, 1]:
items like what the user rejected sink, not only the rejected items themselves.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.settings import RankingSettings
from indexing import ann, diversity
from indexing.artifacts import IndexVersion

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
SOURCES = ("content", "collaborative", "cooccurrence", "recent", "trending")


@dataclass(frozen=True)
class Blend:
    """Per-candidate scores of one user's list, before diversification."""

    rows: Rows
    raw: dict[str, Floats]  # source -> raw score per candidate
    scaled: dict[str, Floats]  # source -> min-max scaled score per candidate
    push: Floats  # scaled similarity to rejected items
    weights: dict[str, float]
    total: Floats


def weights_for(settings: RankingSettings, liked: int) -> dict[str, float]:
    """Each source's weight for a user with `liked` liked items (see the module docstring)."""
    h = liked / (liked + settings.adapt_at)
    rich = {
        "content": settings.content_weight,
        "collaborative": settings.collaborative_weight,
        "cooccurrence": settings.cooccurrence_weight,
        "recent": settings.recent_weight,
        "trending": settings.trending_weight,
    }
    cold = {
        "content": settings.cold_content_weight,
        "collaborative": 0.0,
        "cooccurrence": 0.0,
        "recent": settings.recent_weight,
        "trending": settings.cold_trending_weight,
    }
    return {k: h * rich[k] + (1.0 - h) * cold[k] for k in SOURCES}


def recent_weights(count: int, settings: RankingSettings) -> Floats:
    k = np.arange(count, dtype=np.float32)
    weights: Floats = np.power(0.5, k / (settings.recent_items / 2.0)).astype(np.float32)
    return weights


def _scaled(values: Floats) -> Floats:
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if high - low <= 1e-12:
        return np.zeros_like(values)
    return ((values - low) / (high - low)).astype(np.float32)


def _top(scores: Floats, depth: int) -> Rows:
    positive = np.flatnonzero(scores > 0)
    if len(positive) > depth:
        positive = positive[np.argpartition(-scores[positive], depth - 1)[:depth]]
    return positive.astype(np.int64)


def blend(
    version: IndexVersion,
    settings: RankingSettings,
    *,
    taste: Floats | None,
    liked: Rows,
    rejected: Rows,
    trending: Floats,
    depth: int,
    category: str | None = None,
    excluded: Collection[int] = (),
    only: Rows | None = None,
) -> Blend:
    """Score the user's candidates (or exactly the rows in `only`) from every source."""
    n_items = len(version.item_ids)
    collab = version.collaborative
    has_taste = taste is not None and bool(np.any(taste))
    factors = collab.user_factors(liked) if collab is not None and len(liked) else None
    recent = liked[: settings.recent_items]
    cooc = recent_sum = None
    if collab is not None and len(liked):
        cooc = np.asarray(collab.neighbour_scores(liked).todense()).ravel()
        recent_sum = np.asarray(
            collab.neighbour_scores(recent, recent_weights(len(recent), settings)).todense()
        ).ravel()

    if only is not None:
        rows = np.asarray(only, dtype=np.int64)
    elif category is not None:
        rows = version.category_rows.get(category, np.zeros(0, dtype=np.int64))
    else:
        found: list[Rows] = [_top(trending, depth)]
        k = depth + len(excluded)
        if has_taste:
            assert taste is not None
            _, hits = ann.search(version.item_index, taste[None, :], k)
            found.append(hits[0][hits[0] >= 0].astype(np.int64))
        if factors is not None and collab is not None and np.any(factors):
            _, hits = ann.search(collab.factor_index, factors[None, :], k)
            found.append(hits[0][hits[0] >= 0].astype(np.int64))
        for summed in (cooc, recent_sum):
            if summed is not None:
                found.append(_top(summed, k))
        rows = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    if excluded and len(rows):
        excluded = set(excluded)
        rows = rows[np.fromiter((r not in excluded for r in rows), dtype=bool, count=len(rows))]
    rows = rows[rows < n_items]

    zeros = np.zeros(len(rows), dtype=np.float32)
    raw = {
        "content": version.item_vectors[rows] @ taste if has_taste and taste is not None else zeros,
        "collaborative": (
            collab.item_factors[rows] @ factors
            if collab is not None and factors is not None
            else zeros
        ),
        "cooccurrence": cooc[rows].astype(np.float32) if cooc is not None else zeros,
        "recent": recent_sum[rows].astype(np.float32) if recent_sum is not None else zeros,
        "trending": trending[rows].astype(np.float32),
    }
    scaled = {k: _scaled(v) for k, v in raw.items()}
    push = zeros
    if len(rejected) and len(rows):
        closest = (version.item_vectors[rows] @ version.item_vectors[rejected].T).max(axis=1)
        push = _scaled(np.maximum(closest, 0.0).astype(np.float32))
    weights = weights_for(settings, len(liked))
    total = sum((weights[k] * scaled[k] for k in SOURCES), start=zeros.copy())
    total = (total - settings.negative_weight * push).astype(np.float32)
    return Blend(rows, raw, scaled, push, weights, total)


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
