"""The holdout protocol: the split a build and the evaluation both judge on, and its figures.

Protocol: per user, sort interactions by time; the ones at or after the time of the
interaction at position floor(0.8 n) are held out (ties stay together). The user's positives
are the held-out items not already in their training history whose interaction weight is
positive and at least the median positive held-out weight of the whole data: every held-out
view where all events are views, ratings of 4 and above where ratings run 1 to 5, with no
threshold a view-only history could miss. A version is assembled from the rest, every
evaluated user's list is ranked by `indexing.ranking` with their training items excluded,
and the top k is scored:
  Recall@k  hits / min(positives, k)
  NDCG@k    sum over hits at rank r (1-based) of 1 / log2(r + 1), over the same for a perfect list
  MRR       1 / rank of the first hit (0 without one)
  coverage  distinct items recommended to anyone / items in the catalog
  users_hit users with at least one held-out positive in their top k
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from common.settings import RankingSettings, Settings
from common.snapshot import Snapshot
from indexing import hybrid, ranking
from indexing.artifacts import IndexVersion
from indexing.profiles import type_weights

Rows = npt.NDArray[np.int64]
Truth = Mapping[int, set[int]]  # user row -> held-out positive item rows
HOLDOUT = 0.2


def held_out(
    user_rows: Rows, times: npt.NDArray[np.float64], fraction: float = HOLDOUT
) -> npt.NDArray[np.bool_]:
    """Mask of the interactions held out: each user's newest `fraction`, ties kept together."""
    test = np.zeros(len(user_rows), dtype=bool)
    order = np.lexsort((np.arange(len(user_rows)), times, user_rows))
    bounds = np.searchsorted(user_rows[order], np.arange(int(user_rows.max(initial=-1)) + 2))
    for start, end in itertools.pairwise(bounds):
        mine = order[start:end]
        if len(mine) == 0:
            continue
        cut = int((1.0 - fraction) * len(mine))
        if cut >= len(mine):
            continue
        test[mine[times[mine] >= times[mine[cut]]]] = True
    return test


def positive_mask(
    snapshot: Snapshot, settings: Settings, test: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Interactions that count as a held-out positive: a positive weight at least the median
    positive weight held out under `test` (the rule in this module's docstring)."""
    weights = type_weights(snapshot.kinds, snapshot.values, settings.interactions)
    good = weights[test & (weights > 0)]
    bar = float(np.median(good)) if len(good) else np.inf
    result: npt.NDArray[np.bool_] = (weights > 0) & (weights >= bar)
    return result


def split(
    snapshot: Snapshot,
    settings: Settings,
    test: npt.NDArray[np.bool_] | None = None,
    positive: npt.NDArray[np.bool_] | None = None,
) -> tuple[Snapshot, Truth]:
    """The training snapshot and each user's held-out positives (rows of the same catalog).

    `test` (held out) and `positive` (a held-out positive) are masks over the snapshot's
    interactions; by default the newest 20% of each user and the median rule above.
    """
    if test is None:
        test = held_out(snapshot.user_rows, snapshot.times)
    if positive is None:
        positive = positive_mask(snapshot, settings, test)
    keep = ~test
    # A held-out positive counts only where the user did not touch the item in training:
    # (user, item) pairs as one number each, looked up in the sorted training pairs (10M
    # pairs as Python tuples took seconds and gigabytes, and np.isin's merge sort of both
    # sides 11 s).
    pairs = snapshot.user_rows.astype(np.int64) * len(snapshot.item_ids) + snapshot.item_rows
    chosen = np.flatnonzero(test & positive)
    trained = np.sort(pairs[keep])
    at = np.minimum(np.searchsorted(trained, pairs[chosen]), max(len(trained) - 1, 0))
    touched = trained[at] == pairs[chosen] if len(trained) else np.zeros(len(chosen), bool)
    fresh = chosen[~touched]
    truth: dict[int, set[int]] = {}
    for user, item in zip(
        snapshot.user_rows[fresh].tolist(), snapshot.item_rows[fresh].tolist(), strict=True
    ):
        truth.setdefault(user, set()).add(item)
    train = replace(
        snapshot,
        user_rows=snapshot.user_rows[keep],
        item_rows=snapshot.item_rows[keep],
        kinds=[k for k, t in zip(snapshot.kinds, test, strict=True) if not t],
        values=[v for v, t in zip(snapshot.values, test, strict=True) if not t],
        times=snapshot.times[keep],
    )
    return train, truth


def ndcg_of(top: Iterable[int], positives: Collection[int], k: int) -> float:
    """NDCG@k of one top-k list against one user's held-out positives."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    hits = np.array([r in positives for r in list(top)[:k]], dtype=bool)
    gain = float(discount[: len(hits)][hits].sum())
    return gain / float(discount[: min(len(positives), k)].sum())


def scores(
    lists: Mapping[int, Iterable[int]], truth: Truth, k: int, n_items: int
) -> dict[str, float]:
    """Recall@k, NDCG@k, MRR and coverage of top-k lists against held-out positives."""
    recall, ndcg, mrr, shown = [], [], [], set()
    for user, positives in truth.items():
        top = list(lists.get(user, ()))[:k]
        shown.update(top)
        hits = np.array([r in positives for r in top] + [False] * (k - len(top)))
        recall.append(hits.sum() / min(len(positives), k))
        ndcg.append(ndcg_of(top, positives, k))
        first = np.flatnonzero(hits)
        mrr.append(1.0 / (first[0] + 1) if len(first) else 0.0)
    return {
        "users": float(len(truth)),
        f"recall@{k}": float(np.mean(recall)) if recall else 0.0,
        f"ndcg@{k}": float(np.mean(ndcg)) if ndcg else 0.0,
        "mrr": float(np.mean(mrr)) if mrr else 0.0,
        "coverage": len(shown) / n_items if n_items else 0.0,
        "users_hit": float(sum(m > 0 for m in mrr)),
    }


def alone(settings: RankingSettings, source: str) -> RankingSettings:
    """Ranking settings that keep only one source (same weight with any history)."""
    zero = {f"{s}_weight": 0.0 for s in hybrid.SOURCES} | {
        "cold_content_weight": 0.0,
        "cold_trending_weight": 0.0,
    }
    one = {f"{source}_weight": 1.0}
    if source in ("content", "trending"):
        one[f"cold_{source}_weight"] = 1.0
    return settings.model_copy(update=zero | one | {"negative_weight": 0.0})


def rank_all(
    version: IndexVersion,
    settings: Settings,
    ranking_settings: RankingSettings | None,
    users: Iterable[int],
    k: int,
) -> dict[int, list[int]]:
    """Each user's top k by the API's ranking code (the same depth the API ranks to, then
    cut), training items excluded. No ranking settings: the popular list, as a new user
    gets it."""
    lists = {}
    with threadpool_limits(1, "blas"):  # one user's products are small (as in precompute)
        for user in users:
            profile = ranking.profile_of(version, version.user_ids[user])
            depth = max(k, settings.index.ranking_depth)
            ranked = ranking.recommend(
                version,
                profile,
                ranking_settings or settings.ranking,
                strategy="popular" if ranking_settings is None else "hybrid",
                depth=depth,
                cold_start_min=settings.index.cold_start_min,
            )
            lists[user] = ranked.rows[:k].tolist()
    return lists


def evaluate(
    version: IndexVersion,
    settings: Settings,
    truth: Truth,
    *,
    k: int = 10,
    components: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Figures for the hybrid as the version serves it and, with `components`, for each
    source alone and for the popular list."""
    variants: dict[str, RankingSettings | None] = {"hybrid": version.ranking(settings.ranking)}
    if components:
        variants |= {source: alone(settings.ranking, source) for source in hybrid.SOURCES}
        variants["popular"] = None
    results = {}
    for name, ranking_settings in variants.items():
        if progress is not None:
            progress(name)
        lists = rank_all(version, settings, ranking_settings, truth.keys(), k)
        results[name] = scores(lists, truth, k, len(version.item_ids))
    return results


def rounded(figures: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {name: {k: round(v, 6) for k, v in row.items()} for name, row in figures.items()}
