"""Each build chooses its own settings on its own holdout, then refits on all the data.

The snapshot is split as the evaluation splits it (indexing/evaluation.py: each user's newest
20% held out). The held-out users are divided in two: the search scores choices on one half
and the figures reported in the manifest, which the quality gate reads, come from the other,
so the reported figures are not the ones the search was fitted to.

The search, each step kept only if it raises NDCG@10, within `tune_seconds`:
  1. model settings, each judged by its own source ranking alone: EASE lambda, shrinkage of
     the item-item cosine, ALS factors, regularisation and alpha; each tried at the starting
     value and at a few values around it (`candidates`);
  2. blend weights by coordinate search: each weight tried at 0, half, double (or 0.25 and
     1 from 0), passes repeated while any weight moves and time is left (one pass always:
     model settings stop at 70% of the time). Each tuning user's candidates are
     scored once, so a trial only re-weights cached standardised scores.
The starting values are the configured settings, so with no time left the build serves
exactly what is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.settings import CollaborativeSettings, RankingSettings, Settings
from indexing import ann, collaborative, evaluation, hybrid, ranking
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative
from indexing.snapshot import Snapshot

Say = Callable[[str], None]
K = 10
# Each model setting, the source that judges it, and how its candidates follow from the
# starting value, in the order they are searched.
MODEL_GRID: dict[str, str] = {
    "ease_lambda": "ease",
    "shrinkage": "cooccurrence",
    "factors": "collaborative",
    "regularization": "collaborative",
    "alpha": "collaborative",
}


def candidates(name: str, start: float) -> list[float]:
    """Values tried for a model setting besides its starting value."""
    if name == "half_life_days":
        return [365.0, 60.0] if start == 0 else [0.0, start * 4, start / 4]
    if name == "shrinkage":
        return [0.0, start * 5] if start > 0 else [20.0, 100.0]
    if name == "factors":
        return [float(min(512, int(start) * 2)), float(max(8, int(start) // 2))]
    multiples = {"ease_lambda": (0.25, 4.0), "regularization": (10.0, 0.1), "alpha": (4.0, 0.25)}
    return [start * m for m in multiples[name]]


WEIGHTS = (
    "content_weight",
    "collaborative_weight",
    "ease_weight",
    "cooccurrence_weight",
    "recent_weight",
    "trending_weight",
    "cold_content_weight",
    "cold_trending_weight",
    "negative_weight",
)


@dataclass
class Tuned:
    """What a build chose, how it chose, and the held-out figures of the choice."""

    collaborative: CollaborativeSettings
    ranking: RankingSettings
    search: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def chosen(self) -> dict[str, Any]:
        """The values a version is built and served with."""
        return {
            "collaborative": self.collaborative.model_dump(),
            "ranking": {name: getattr(self.ranking, name) for name in WEIGHTS},
        }


def tune(
    snapshot: Snapshot,
    settings: Settings,
    assemble: Callable[..., IndexVersion],
    evidence_of: Callable[[Snapshot, Settings], sp.csr_matrix],
    say: Say | None = None,
) -> Tuned:
    """Search settings on the snapshot's own holdout and report figures for the choice."""
    tuned = Tuned(settings.collaborative, settings.ranking)
    limit = settings.index.evaluate_users
    if limit == 0 or len(snapshot.kinds) == 0:
        return tuned
    train, truth = evaluation.split(snapshot, settings)
    if not truth:
        return tuned
    search_users, report_users = _halves(sorted(truth), limit)
    started = time.monotonic()
    # Model settings may take most of the time; the blend search always gets a full pass.
    models_until = started + 0.7 * settings.index.tune_seconds
    deadline = started + settings.index.tune_seconds
    version = assemble(train, settings)
    strength = evidence_of(train, settings)

    def ndcg(ranking_settings: RankingSettings | None, users: Iterable[int]) -> float:
        chosen = {u: truth[u] for u in users}
        lists = evaluation.rank_all(version, settings, ranking_settings, chosen, K)
        return evaluation.scores(lists, chosen, K, len(version.item_ids))[f"ndcg@{K}"]

    for name, source in MODEL_GRID.items():
        alone = evaluation.alone(settings.ranking, source)
        best = ndcg(alone, search_users)
        start = getattr(tuned.collaborative, name)
        tuned.search.append({"setting": name, "value": start, "ndcg@10": round(best, 6)})
        for value in candidates(name, start):
            if time.monotonic() > models_until:
                break
            if name == "factors":
                value = int(value)
            candidate = tuned.collaborative.model_copy(update={name: value})
            kept, kept_strength = version.collaborative, strength
            assert kept is not None
            if name == "half_life_days":
                strength = evidence_of(
                    train, settings.model_copy(update={"collaborative": candidate})
                )
            version.collaborative = _refit(kept, source, strength, candidate, settings)
            figure = ndcg(alone, search_users)
            tuned.search.append({"setting": name, "value": value, "ndcg@10": round(figure, 6)})
            if figure > best + 1e-4:
                best, tuned.collaborative = figure, candidate
            else:
                version.collaborative, strength = kept, kept_strength
        if name == "half_life_days" and tuned.collaborative.half_life_days != start:
            # The other models learn from the evidence too.
            for other in ("cooccurrence", "collaborative"):
                assert version.collaborative is not None
                version.collaborative = _refit(
                    version.collaborative, other, strength, tuned.collaborative, settings
                )
        if say is not None:
            say(f"tuning: {name} = {getattr(tuned.collaborative, name)} (ndcg {best:.4f})")

    tuned.ranking = _weights(version, settings, truth, search_users, deadline, tuned.search, say)
    version.manifest = {"tuning": {"chosen": tuned.chosen()}}
    figures = evaluation.evaluate(version, settings, {u: truth[u] for u in report_users})
    tuned.metrics = {
        "protocol": (
            f"newest {evaluation.HOLDOUT:.0%} of each user's interactions held out; "
            f"{len(search_users)} users tuned on, {len(report_users)} others reported"
        ),
        **evaluation.rounded(figures),
    }
    return tuned


def _halves(users: list[int], limit: int) -> tuple[list[int], list[int]]:
    """Up to `limit` users to search on and as many others to report on, spread evenly."""
    if len(users) > 2 * limit:
        users = [users[int(n)] for n in np.linspace(0, len(users) - 1, 2 * limit)]
    if len(users) < 20:  # too few to split: search and report on the same users
        return users, users
    return users[0::2], users[1::2]


def _refit(
    model: Collaborative,
    source: str,
    strength: sp.csr_matrix,
    candidate: CollaborativeSettings,
    settings: Settings,
) -> Collaborative:
    """`model` with the part behind `source` refitted under `candidate`."""
    x = collaborative.positive_part(strength)
    half_life = candidate.half_life_days
    if source == "ease":
        ease = collaborative.ease(
            x, candidate.ease_lambda, candidate.ease_max_items, candidate.ease_neighbours
        )
        return replace(model, ease=ease, half_life_days=half_life)
    if source == "cooccurrence":
        neighbours = collaborative.cosine(x, candidate.neighbours, candidate.shrinkage)
        return replace(model, neighbours=neighbours, half_life_days=half_life)
    factors = ann.build(collaborative.als(x, candidate), settings.index)
    return replace(
        model,
        factor_index=factors,
        regularization=candidate.regularization,
        alpha=candidate.alpha,
        half_life_days=half_life,
    )


@dataclass(frozen=True)
class _Cached:
    """One tuning user's candidates, scored once by every source."""

    rows: npt.NDArray[np.int64]
    scaled: dict[str, npt.NDArray[np.float32]]
    push: npt.NDArray[np.float32]
    liked: int
    positives: set[int]
    fixed: list[int] | None  # the popular list, for a user the blend does not rank


def _weights(
    version: IndexVersion,
    settings: Settings,
    truth: evaluation.Truth,
    users: list[int],
    deadline: float,
    log: list[dict[str, Any]],
    say: Say | None,
) -> RankingSettings:
    """Coordinate search over the blend weights on cached per-user scores."""
    cached = [_cache(version, settings, u, truth[u]) for u in users]
    current = settings.ranking
    best = _blend_ndcg(cached, current)
    log.append({"setting": "blend", "value": "start", "ndcg@10": round(best, 6)})
    moved, passes = True, 0
    while moved and (passes == 0 or time.monotonic() < deadline):
        moved, passes = False, passes + 1
        for name in WEIGHTS:
            start = getattr(current, name)
            for value in (0.0, start / 2, start * 2) if start > 0 else (0.25, 1.0):
                candidate = current.model_copy(update={name: value})
                figure = _blend_ndcg(cached, candidate)
                if figure > best + 1e-4:
                    best, current, moved = figure, candidate, True
                    log.append({"setting": name, "value": value, "ndcg@10": round(figure, 6)})
    if say is not None:
        say(f"tuning: blend weights chosen (ndcg {best:.4f} on the tuning users)")
    return current


def _cache(version: IndexVersion, settings: Settings, user: int, positives: set[int]) -> _Cached:
    profile = ranking.profile_of(version, version.user_ids[user])
    excluded = ranking.excluded_rows(version, profile, (), True)
    liked, _ = ranking.positives_in(version, profile)
    if profile.count < settings.index.cold_start_min or not (profile.has_taste or len(liked)):
        popular = ranking.popular(version, depth=K, category=None, excluded=excluded)
        empty = np.zeros(0, dtype=np.float32)
        return _Cached(popular.rows, {}, empty, 0, positives, popular.rows[:K].tolist())
    blended = ranking.blend_for(
        version, profile, settings.ranking, settings.index.ranking_depth, None, excluded, None
    )
    return _Cached(blended.rows, blended.scaled, blended.push, len(liked), positives, None)


def _blend_ndcg(cached: list[_Cached], weights: RankingSettings) -> float:
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    total = 0.0
    for user in cached:
        if user.fixed is not None:
            top = user.fixed
        else:
            scores = hybrid.combine(
                user.scaled, user.push, hybrid.weights_for(weights, user.liked), weights
            )
            top = user.rows[np.lexsort((user.rows, -scores))[:K]].tolist()
        hits = np.array([r in user.positives for r in top] + [False] * (K - len(top)))
        total += float((hits * discount).sum() / discount[: min(len(user.positives), K)].sum())
    return total / len(cached) if cached else 0.0
