"""Each build chooses its own settings on its own holdout, then refits on all the data.

The snapshot is split as the evaluation splits it (indexing/evaluation.py: each user's newest
20% held out), and up to `evaluate_users` held-out users judge every choice (as many as
`tune_seconds` allows, at least MIN_USERS). The figures reported in the manifest, which the
quality gate reads, are cross-fitted, so they are not the ones the search was fitted to: the
users are divided in two, the blend search is run again on each half alone, and each half
is ranked with the weights chosen on the other.

The search, within `tune_seconds`, keeps a step only if it raises the tuning users' NDCG@10
by more than SIGNIFICANCE standard errors of their paired per-user gain: a few hundred users
are a noisy judge, and a move inside that noise (dropping a source for a gain of 0.0003,
say) is as likely to lose on the next users as to win. The steps:
  1. model settings, each judged by its own source ranking alone: EASE lambda, shrinkage of
     the item-item cosine, ALS factors, regularisation and alpha; each tried at the starting
     value and at a few values around it (`candidates`);
  2. blend weights: the start is the configured blend, or an equal blend of some of the
     sources (a single one included) where that is clearly better; then coordinate search,
     each weight tried at 0, half, double (or 0.25 and 1 from 0), passes repeated while any
     weight moves and time is left (one pass always: model settings stop at 70% of the
     time). Each user's candidates are scored once, so a trial only re-weights cached
     standardised scores.
The starting values are the configured settings, so with no time left the build serves
exactly what is configured.

Fitting the models is most of a large build's time, and a build fitted them twice: once
without the holdout to tune, once on all the data to serve. Where the judged users are a
small part of a large snapshot, only their newest interactions are held out (the others
train), and if those are at most REFIT_ABOVE of all interactions the models fitted for the
tuning are the ones served: they lack that share of the evidence, and the user profiles,
the history and the popularity are still made from all of it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from common.settings import CollaborativeSettings, RankingSettings, Settings
from common.snapshot import Snapshot
from indexing import ann, collaborative, evaluation, hybrid, ranking
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative

Say = Callable[[str], None]
Floats = npt.NDArray[np.float64]
K = 10
SIGNIFICANCE = 1.0
SUBSET_SIGNIFICANCE = 3.0
MIN_GAIN = 1e-4
# Fewer held-out users than this are not split in two to report on.
MIN_SPLIT = 20
MODEL_USERS = 600
MIN_USERS = 300
# The largest share of all interactions the served models may lack (see the docstring).
REFIT_ABOVE = 0.01
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
    "sequence_weight",
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
    # The models fitted for the tuning, where they are to be served (none: fit on all).
    models: Collaborative | None = None
    # How many interactions those models were not fitted on: the judged users' newest.
    models_lack: int = 0

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
    test = evaluation.held_out(snapshot.user_rows, snapshot.times)
    positive = evaluation.positive_mask(snapshot, settings, test)
    train, truth = evaluation.split(snapshot, settings, test, positive)
    if not truth:
        return tuned
    users = _spread(sorted(truth), limit)
    judged = test & np.isin(snapshot.user_rows, users)
    lack = int(judged.sum())
    served = lack < int(test.sum()) and lack <= REFIT_ABOVE * len(test)
    if served:
        # The judged users' truth is the same: their own split is unchanged.
        train, truth = evaluation.split(snapshot, settings, judged, positive)
    version = assemble(train, settings)
    if say is not None:
        say(f"tuning: fitted on the training split ({len(train.user_rows):,} interactions)")
    strength = evidence_of(train, settings)
    # The budget is the search's, after the one fit every build makes. Model settings may
    # take 70% of it; scoring the users for the blend search always gets the other 30%.
    started = time.monotonic()
    models_until = started + 0.7 * settings.index.tune_seconds
    deadline = started + settings.index.tune_seconds

    def ndcg(ranking_settings: RankingSettings | None, users: Iterable[int]) -> Floats:
        """Each user's NDCG@10."""
        lists = evaluation.rank_all(version, settings, ranking_settings, users, K)
        return np.array([evaluation.ndcg_of(lists[u], truth[u], K) for u in lists])

    # Model settings are judged by full rankings, a few hundred users at a time.
    model_users = _spread(users, MODEL_USERS)
    for name, source in MODEL_GRID.items():
        alone = evaluation.alone(settings.ranking, source)
        best = ndcg(alone, model_users)
        start = getattr(tuned.collaborative, name)
        tuned.search.append({"setting": name, "value": start, "ndcg@10": _mean(best)})
        # The next candidate's likely cost: the last one's refit and judging, or at first
        # the model's own fit.
        assert version.collaborative is not None
        took = version.collaborative.fit_seconds.get(source, 0.0)
        for value in candidates(name, start):
            began = time.monotonic()
            # One that would end past the models' share of the time is not begun: at 1M
            # items one EASE refit is a minute, and a second overran the share by as much.
            if began + took > models_until:
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
            figure = ndcg(alone, model_users)
            took = time.monotonic() - began
            tuned.search.append({"setting": name, "value": value, "ndcg@10": _mean(figure)})
            if better(figure, best):
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
            say(f"tuning: {name} = {getattr(tuned.collaborative, name)} (ndcg {_mean(best):.4f})")

    # Scoring a user's candidates is what costs most on a large catalog: past the deadline
    # the users scored so far (at least MIN_USERS, taken in a random order so that any
    # prefix is a fair sample) are the ones the blend is chosen and reported on.
    cached: dict[int, _Cached] = {}
    scoring_until = max(deadline, time.monotonic() + 0.3 * settings.index.tune_seconds)
    with threadpool_limits(1, "blas"):  # one user's products are small (as in precompute)
        for n in np.random.default_rng(settings.collaborative.seed).permutation(len(users)):
            if len(cached) >= MIN_USERS and time.monotonic() > scoring_until:
                break
            cached[users[n]] = _cache(version, settings, users[n], truth[users[n]])
    users = sorted(cached)

    def weights_on(group: list[int], log: list[dict[str, Any]]) -> RankingSettings:
        return _weights([cached[u] for u in group], settings.ranking, deadline, log)

    tuned.ranking = weights_on(users, tuned.search)
    if say is not None:
        say(f"tuning: blend weights chosen on {len(users)} users")
    # The hybrid's figures come from users the weights were not chosen on: each half is
    # ranked with the weights the same search chooses on the other half.
    lists: dict[int, list[int]] = {}
    if len(users) >= MIN_SPLIT:
        first, second = users[0::2], users[1::2]
        for ranked, chosen_on in ((first, second), (second, first)):
            weights = weights_on(chosen_on, [])
            lists |= evaluation.rank_all(version, settings, weights, ranked, K)
        how = "each half ranked with the weights chosen on the other half"
    else:
        lists = evaluation.rank_all(version, settings, tuned.ranking, users, K)
        how = "too few to split: ranked with the weights chosen on them"
    everyone = {u: truth[u] for u in users}
    n_items = len(version.item_ids)
    figures = {"hybrid": evaluation.scores(lists, everyone, K, n_items)}
    for source in hybrid.SOURCES:
        alone = evaluation.alone(settings.ranking, source)
        top = {u: _top(cached[u], alone) for u in users}
        figures[source] = evaluation.scores(top, everyone, K, n_items)
    popular = evaluation.rank_all(version, settings, None, users, K)
    figures["popular"] = evaluation.scores(popular, everyone, K, n_items)
    if served:
        tuned.models, tuned.models_lack = version.collaborative, lack
    tuned.metrics = {
        "protocol": (
            f"newest {evaluation.HOLDOUT:.0%} of each user's interactions held out; "
            f"{len(users)} users; hybrid figures: {how}"
        ),
        **evaluation.rounded(figures),
    }
    return tuned


def better(candidate: Floats, best: Floats, significance: float = SIGNIFICANCE) -> bool:
    """Whether per-user figures `candidate` beat `best` (the same users) by more than
    `significance` standard errors of the paired gain, and by at least MIN_GAIN."""
    gain = candidate - best
    if len(gain) == 0:
        return False
    noise = float(gain.std(ddof=1)) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    return float(gain.mean()) > max(MIN_GAIN, significance * noise)


def _mean(figures: Floats) -> float:
    return round(float(figures.mean()), 6) if len(figures) else 0.0


def _spread(users: list[int], limit: int) -> list[int]:
    """At most `limit` of the users, spread evenly over them."""
    if len(users) > limit:
        users = [users[int(n)] for n in np.linspace(0, len(users) - 1, limit)]
    return users


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
    cached: list[_Cached],
    configured: RankingSettings,
    deadline: float,
    log: list[dict[str, Any]],
) -> RankingSettings:
    """The blend for these users: the best start, then coordinate search around it."""
    side = _Side.of(cached)
    current = configured
    best = _blend_ndcg(side, current)
    log.append({"setting": "blend", "value": "configured", "ndcg@10": _mean(best)})
    # An equal blend of some sources (a single one included) that beats the configured
    # blend is a better place to start: on some data one or two models say all there is to
    # say, and the others only add noise. The best of 127 blends is the best partly by
    # chance, so it must clear SUBSET_SIGNIFICANCE (on pure noise, 600 users, one run in
    # twenty still moved to an equal blend).
    found, found_figure = current, best
    for subset in _subsets():
        candidate = _equal(configured, subset)
        figure = _blend_ndcg(side, candidate)
        if figure.mean() > found_figure.mean():
            found, found_figure = candidate, figure
    if found is not current and better(found_figure, best, SUBSET_SIGNIFICANCE):
        best, current = found_figure, found
        log.append({"setting": "blend", "value": _sources(found), "ndcg@10": _mean(best)})
    moved, passes = True, 0
    while moved and (passes == 0 or time.monotonic() < deadline):
        moved, passes = False, passes + 1
        for name in WEIGHTS:
            start = getattr(current, name)
            for value in (0.0, start / 2, start * 2) if start > 0 else (0.25, 1.0):
                candidate = current.model_copy(update={name: value})
                figure = _blend_ndcg(side, candidate)
                if better(figure, best):
                    best, current, moved = figure, candidate, True
                    log.append({"setting": name, "value": value, "ndcg@10": _mean(figure)})
    return current


def _subsets() -> list[tuple[str, ...]]:
    sources = hybrid.SOURCES
    return [c for n in range(1, len(sources) + 1) for c in itertools.combinations(sources, n)]


def _equal(configured: RankingSettings, subset: tuple[str, ...]) -> RankingSettings:
    """Weight 1 for each source in `subset` (cold weights too), 0 for the others."""
    weights = {f"{s}_weight": float(s in subset) for s in hybrid.SOURCES}
    weights |= {f"cold_{s}_weight": float(s in subset) for s in ("content", "trending")}
    return configured.model_copy(update=weights)


def _sources(weights: RankingSettings) -> str:
    used = [s for s in hybrid.SOURCES if getattr(weights, f"{s}_weight") > 0]
    return " + ".join(used) + " (equal)"


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


def _top(user: _Cached, weights: RankingSettings) -> list[int]:
    """The user's top K under `weights`, from the cached scores."""
    if user.fixed is not None:
        return user.fixed
    weighted = hybrid.weights_for(weights, user.liked)
    scores = hybrid.combine(user.scaled, user.push, weighted, weights)
    top: list[int] = user.rows[np.lexsort((user.rows, -scores))[:K]].tolist()
    return top


# The discount of each of the top K positions.
_DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


@dataclass(frozen=True)
class _Side:
    """The tuning users' cached candidates side by side, padded to the longest list, so
    that a blend is scored for all of them in a few array operations, exactly as `_top`
    scores each (the blend search scores a few hundred blends)."""

    scaled: dict[str, npt.NDArray[np.float32]]  # source -> (users, width), 0 where padded
    push: npt.NDArray[np.float32]  # (users, width), 0 where padded
    rows: npt.NDArray[np.int64]  # (users, width), past every row where padded
    valid: npt.NDArray[np.bool_]
    hit: npt.NDArray[np.bool_]  # the candidate is one of the user's held-out positives
    liked: Floats  # each ranked user's positive items, as `hybrid.weights_for` counts them
    ideal: Floats  # each ranked user's best DCG@K
    ranked: npt.NDArray[np.int64]  # where the ranked users stand among all of them
    fixed: Floats  # every user's NDCG@K where their list is fixed (popular), else 0

    @classmethod
    def of(cls, cached: list[_Cached]) -> _Side:
        ranked = [n for n, user in enumerate(cached) if user.fixed is None]
        fixed = np.zeros(len(cached), dtype=np.float64)
        for n, user in enumerate(cached):
            if user.fixed is not None:
                fixed[n] = evaluation.ndcg_of(user.fixed, user.positives, K)
        width = max((len(cached[n].rows) for n in ranked), default=0)
        shape = (len(ranked), width)
        scaled = {s: np.zeros(shape, dtype=np.float32) for s in hybrid.SOURCES}
        push = np.zeros(shape, dtype=np.float32)
        rows = np.full(shape, np.iinfo(np.int64).max, dtype=np.int64)
        valid = np.zeros(shape, dtype=bool)
        hit = np.zeros(shape, dtype=bool)
        for at, n in enumerate(ranked):
            user = cached[n]
            count = len(user.rows)
            for source in hybrid.SOURCES:
                scaled[source][at, :count] = user.scaled[source]
            push[at, :count] = user.push
            rows[at, :count] = user.rows
            valid[at, :count] = True
            hit[at, :count] = [r in user.positives for r in user.rows.tolist()]
        ideal = [float(_DISCOUNT[: min(len(cached[n].positives), K)].sum()) for n in ranked]
        return cls(
            scaled,
            push,
            rows,
            valid,
            hit,
            np.array([cached[n].liked for n in ranked], dtype=np.float64),
            np.array(ideal, dtype=np.float64),
            np.array(ranked, dtype=np.int64),
            fixed,
        )


def _blend_ndcg(side: _Side, weights: RankingSettings) -> Floats:
    """Each tuning user's NDCG@10 under `weights`: `_top`'s lists, for every user at once
    (`hybrid.weights_for`, `hybrid.combine` and the order by score, ties by row)."""
    figure = side.fixed.copy()
    if not len(side.ranked):
        return figure
    h = side.liked / (side.liked + weights.adapt_at)
    cold = hybrid.cold_weights(weights)
    total = np.zeros(side.rows.shape, dtype=np.float32)
    for source in hybrid.SOURCES:
        weight = h * hybrid.rich_weight(weights, source) + (1.0 - h) * cold.get(source, 0.0)
        total += weight.astype(np.float32)[:, None] * side.scaled[source]
    if weights.negative_weight:
        top = np.where(side.valid, total, -np.inf).max(axis=1, initial=-np.inf)
        bottom = np.where(side.valid, total, np.inf).min(axis=1, initial=np.inf)
        pushed: npt.NDArray[np.bool_] = np.any(side.push != 0, axis=1)
        spread = np.where(pushed, top - bottom, 1.0).astype(np.float64)
        spread[spread == 0] = 1.0
        factor = (weights.negative_weight * spread).astype(np.float32)
        total = np.where(pushed[:, None], total - factor[:, None] * side.push, total)
    total[~side.valid] = -np.inf
    hits = _top_hits(total, side.rows, side.hit)
    dcg = (hits * _DISCOUNT[: hits.shape[1]]).sum(axis=1)
    figure[side.ranked] = dcg / side.ideal
    return figure


def _top_hits(
    total: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], hit: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Per user (a row of each array), whether each of the K best candidates, best first
    and ties by row, is a hit. Only the candidates at or above each user's K-th best score
    are sorted (ties at that score included)."""
    k = min(K, total.shape[1])
    if k == 0:
        return np.zeros((len(total), 0), dtype=bool)
    kth = -np.partition(-total, k - 1, axis=1)[:, k - 1]
    near = (total >= kth[:, None]) & (total > -np.inf)  # not the padding
    width = max(1, int(near.sum(axis=1).max()))
    # Each user's candidates at or above their K-th best, packed to the left, then sorted.
    place = np.cumsum(near, axis=1) - 1
    user, column = np.nonzero(near)
    packed_total = np.full((len(total), width), -np.inf, dtype=np.float32)
    packed_rows = np.full((len(total), width), np.iinfo(np.int64).max, dtype=np.int64)
    packed_hit = np.zeros((len(total), width), dtype=bool)
    at = place[user, column]
    packed_total[user, at] = total[user, column]
    packed_rows[user, at] = rows[user, column]
    packed_hit[user, at] = hit[user, column]
    order = np.lexsort((packed_rows, -packed_total), axis=-1)[:, :k]
    found: npt.NDArray[np.bool_] = np.take_along_axis(packed_hit, order, axis=1)
    return found
