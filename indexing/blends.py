"""The build's search for blend weights (indexing/tuning.py runs it), over users whose
candidates were scored once by every source: a trial only re-weights cached scores.

The search keeps a step only if it raises the judging users' NDCG@10 by more than
SIGNIFICANCE standard errors of their paired per-user gain (`better`): a few hundred users
are a noisy judge, and a move inside that noise (dropping a source for a gain of 0.0003,
say) is as likely to lose on the next users as to win. Its starts, the best kept:
  - the configured blend;
  - an equal blend of some of the sources (a single one included), where clearly better;
  - the weights a listwise loss fits to the users' hits (indexing/listwise.py), judged on
    users it was not fitted on (each half by the fit on the other);
then coordinate search, each weight tried at 0, half, double (or 0.25 and 1 from 0), passes
repeated while any weight moves and time is left (one pass always).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from common.settings import RankingSettings
from indexing import holdout, hybrid, listwise, sources

Doubles = npt.NDArray[np.float64]
K = 10
SIGNIFICANCE = 1.0
SUBSET_SIGNIFICANCE = 3.0
MIN_GAIN = 1e-4
# The weights searched: each registered source's, then their own cold weights, then the
# push's.
WEIGHTS = (*sources.weight_settings(), "negative_weight")


@dataclass(frozen=True)
class Judge:
    """One judging user's candidates, scored once by every source."""

    rows: npt.NDArray[np.int64]
    scaled: dict[str, npt.NDArray[np.float32]]  # as hybrid.Blend has them, trust included
    push: npt.NDArray[np.float32]
    liked: float  # the supported positive items, as `hybrid.weights_for` counts them
    positives: set[int]
    fixed: list[int] | None  # the popular list, for a user the blend does not rank
    support: dict[str, float] = field(default_factory=dict)  # as hybrid.Blend has it
    # The user judged for: a user and the same user cut to their newest items judge as one.
    user: int = 0


def better(candidate: Doubles, best: Doubles, significance: float = SIGNIFICANCE) -> bool:
    """Whether per-user figures `candidate` beat `best` (the same users) by more than
    `significance` standard errors of the paired gain, and by at least MIN_GAIN."""
    gain = candidate - best
    if len(gain) == 0:
        return False
    noise = float(gain.std(ddof=1)) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    return float(gain.mean()) > max(MIN_GAIN, significance * noise)


def mean(figures: Doubles) -> float:
    return round(float(figures.mean()), 6) if len(figures) else 0.0


def choose(
    judges: list[Judge],
    configured: RankingSettings,
    deadline: float,
    log: list[dict[str, Any]],
    informative: float = 0.0,
) -> RankingSettings:
    """The blend for these users: the best start, then coordinate search around it.
    `informative`: the version's `content_informative`."""
    side = Side.of(judges, informative)

    def ndcg(side: Side, weights: RankingSettings) -> Doubles:
        """Each judged user's NDCG@10 (a user and their cut profile averaged): the figures
        `better` compares, one per user, as independent as users are."""
        return side.per_user(judged(side, weights))

    current = configured
    best = ndcg(side, current)
    log.append({"setting": "blend", "value": "configured", "ndcg@10": mean(best)})
    # An equal blend of some sources (a single one included) that beats the configured
    # blend is a better place to start: on some data one or two models say all there is to
    # say, and the others only add noise. The best of 127 blends is the best partly by
    # chance, so it must clear SUBSET_SIGNIFICANCE (on pure noise, 600 users, one run in
    # twenty still moved to an equal blend).
    found, found_figure = current, best
    for subset in _subsets():
        candidate = _equal(configured, subset)
        figure = ndcg(side, candidate)
        if figure.mean() > found_figure.mean():
            found, found_figure = candidate, figure
    if found is not current and better(found_figure, best, SUBSET_SIGNIFICANCE):
        best, current = found_figure, found
        log.append({"setting": "blend", "value": _sources(found), "ndcg@10": mean(best)})
    out_of_fold = _fitted_elsewhere(side, current)
    if out_of_fold is not None and better(side.per_user(out_of_fold), best):
        fitted = _fitted(side, current, np.ones(len(side.ranked), dtype=bool))
        figure = ndcg(side, fitted) if fitted is not None else best
        if fitted is not None and figure.mean() >= best.mean():
            best, current = figure, fitted
            log.append({"setting": "blend", "value": "fitted", "ndcg@10": mean(best)})
    moved, passes = True, 0
    while moved and (passes == 0 or time.monotonic() < deadline):
        moved, passes = False, passes + 1
        for name in WEIGHTS:
            start = getattr(current, name)
            for value in (0.0, start / 2, start * 2) if start > 0 else (0.25, 1.0):
                candidate = current.model_copy(update={name: value})
                figure = ndcg(side, candidate)
                if better(figure, best):
                    best, current, moved = figure, candidate, True
                    log.append({"setting": name, "value": value, "ndcg@10": mean(figure)})
    return current


def top(judge: Judge, weights: RankingSettings, informative: float = 0.0) -> list[int]:
    """The user's top K under `weights`, from the cached scores."""
    if judge.fixed is not None:
        return judge.fixed
    weighted = hybrid.weights_for(weights, judge.liked, judge.support, informative)
    scores = hybrid.combine(judge.scaled, judge.push, weighted, weights)
    found: list[int] = judge.rows[np.lexsort((judge.rows, -scores))[:K]].tolist()
    return found


def _fitted(
    side: Side, current: RankingSettings, on: npt.NDArray[np.bool_]
) -> RankingSettings | None:
    """`current` with the weights the listwise fit chooses on the ranked users `on`."""
    start = {name: float(getattr(current, name)) for name in listwise.names()}
    scaled = {source: values[on] for source, values in side.scaled.items()}
    design = {
        name: {source: values[on] for source, values in by_source.items()}
        for name, by_source in side.design(current.adapt_at).items()
    }
    fitted = listwise.fit(scaled, side.valid[on], side.hit[on], design, start)
    return current.model_copy(update=fitted) if fitted is not None else None


def _fitted_elsewhere(side: Side, current: RankingSettings) -> Doubles | None:
    """Each judge's NDCG@10 under the weights the listwise fit chooses on the other half of
    the users (a user and their cut profile in the same half), None where a half has
    nothing to fit."""
    half = side.users[side.ranked] % 2 == 0
    figure = None
    for on in (half, ~half):
        fitted = _fitted(side, current, on)
        if fitted is None:
            return None
        scored = judged(side, fitted)
        if figure is None:
            figure = scored.copy()
        figure[side.ranked[~on]] = scored[side.ranked[~on]]
    return figure


def _subsets() -> list[tuple[str, ...]]:
    names = sources.NAMES
    return [c for n in range(1, len(names) + 1) for c in itertools.combinations(names, n)]


def _equal(configured: RankingSettings, subset: tuple[str, ...]) -> RankingSettings:
    """Weight 1 for each source in `subset` (its own cold weight too), 0 for the others."""
    weights = {s.weight: float(s.name in subset) for s in sources.REGISTRY}
    weights |= {cold: float(s in subset) for s, cold in sources.own_cold_weights().items()}
    return configured.model_copy(update=weights)


def _sources(weights: RankingSettings) -> str:
    used = [s.name for s in sources.REGISTRY if getattr(weights, s.weight) > 0]
    return " + ".join(used) + " (equal)"


# The discount of each of the top K positions.
_DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


@dataclass(frozen=True)
class Side:
    """The judging users' cached candidates side by side, padded to the longest list, so
    that a blend is scored for all of them in a few array operations, exactly as `top`
    scores each (the search scores a few hundred blends)."""

    scaled: dict[str, npt.NDArray[np.float32]]  # source -> (users, width), 0 where padded
    push: npt.NDArray[np.float32]  # (users, width), 0 where padded
    rows: npt.NDArray[np.int64]  # (users, width), past every row where padded
    valid: npt.NDArray[np.bool_]
    hit: npt.NDArray[np.bool_]  # the candidate is one of the user's held-out positives
    liked: Doubles  # each ranked user's supported positive items (`hybrid.weights_for`)
    support: dict[str, Doubles]  # collaborative source -> each ranked user's support
    informative: float  # the version's `content_informative`
    ideal: Doubles  # each ranked user's best DCG@K
    ranked: npt.NDArray[np.int64]  # where the ranked users stand among all of them
    fixed: Doubles  # every user's NDCG@K where their list is fixed (popular), else 0
    users: npt.NDArray[np.int64]  # every judge's user

    @classmethod
    def of(cls, judges: list[Judge], informative: float = 0.0) -> Side:
        ranked = [n for n, judge in enumerate(judges) if judge.fixed is None]
        fixed = np.zeros(len(judges), dtype=np.float64)
        for n, judge in enumerate(judges):
            if judge.fixed is not None:
                fixed[n] = holdout.ndcg_of(judge.fixed, judge.positives, K)
        width = max((len(judges[n].rows) for n in ranked), default=0)
        shape = (len(ranked), width)
        scaled = {s: np.zeros(shape, dtype=np.float32) for s in hybrid.SOURCES}
        push = np.zeros(shape, dtype=np.float32)
        rows = np.full(shape, np.iinfo(np.int64).max, dtype=np.int64)
        valid = np.zeros(shape, dtype=bool)
        hit = np.zeros(shape, dtype=bool)
        for at, n in enumerate(ranked):
            judge = judges[n]
            count = len(judge.rows)
            for source in hybrid.SOURCES:
                scaled[source][at, :count] = judge.scaled[source]
            push[at, :count] = judge.push
            rows[at, :count] = judge.rows
            valid[at, :count] = True
            hit[at, :count] = [r in judge.positives for r in judge.rows.tolist()]
        ideal = [float(_DISCOUNT[: min(len(judges[n].positives), K)].sum()) for n in ranked]
        support = {
            source: np.array([judges[n].support.get(source, 1.0) for n in ranked])
            for source in hybrid.FROM_OTHERS
        }
        return cls(
            scaled,
            push,
            rows,
            valid,
            hit,
            np.array([judges[n].liked for n in ranked], dtype=np.float64),
            support,
            informative,
            np.array(ideal, dtype=np.float64),
            np.array(ranked, dtype=np.int64),
            fixed,
            np.array([judge.user for judge in judges], dtype=np.int64),
        )

    def per_user(self, figure: Doubles) -> Doubles:
        """Per-judge figures averaged over each user's judges, in the order of their users."""
        _, group = np.unique(self.users, return_inverse=True)
        total = np.bincount(group, weights=figure)
        counted: Doubles = total / np.bincount(group)
        return counted

    def design(self, adapt_at: float) -> dict[str, dict[str, Doubles]]:
        """How each weight setting listwise.names() fits weighs each source, per ranked
        user: `hybrid.weights_for` is linear in them, its move to content included."""
        h = self.liked / (self.liked + adapt_at)
        ones = np.ones_like(h)
        shares: dict[str, dict[str, Doubles]] = {}
        cold = sources.own_cold_weights()
        for source in listwise.RICH:
            shares[sources.named(source).weight] = {source: h}
        for source in listwise.STEADY:
            shares[sources.named(source).weight] = {source: ones}
        for source in listwise.COLD:
            shares[cold[source]] = {source: 1.0 - h}
        for by_source in shares.values():
            moved = sum(
                (
                    coefficient * (1.0 - self.support[source])
                    for source, coefficient in by_source.items()
                    if source in hybrid.FROM_OTHERS
                ),
                np.zeros_like(h),
            )
            if self.informative > 0 and moved.any():
                by_source["content"] = by_source.get("content", 0.0) + self.informative * moved
        return shares


def weight_arrays(side: Side, weights: RankingSettings) -> dict[str, Doubles]:
    """Each source's weight for each ranked user (`hybrid.weights_for`, for all at once)."""
    h = side.liked / (side.liked + weights.adapt_at)
    cold = hybrid.cold_weights(weights)
    found = {
        source: h * hybrid.rich_weight(weights, source) + (1.0 - h) * cold.get(source, 0.0)
        for source in hybrid.SOURCES
    }
    if side.informative > 0:
        lost = sum(
            (found[k] * (1.0 - side.support[k]) for k in hybrid.FROM_OTHERS),
            np.zeros_like(h),
        )
        found["content"] = found["content"] + side.informative * lost
    return found


def judged(side: Side, weights: RankingSettings) -> Doubles:
    """Each judge's NDCG@10 under `weights`: `top`'s lists, for every judge at once
    (`hybrid.weights_for`, `hybrid.combine` and the order by score, ties by row)."""
    figure = side.fixed.copy()
    if not len(side.ranked):
        return figure
    total = np.zeros(side.rows.shape, dtype=np.float32)
    for source, weight in weight_arrays(side, weights).items():
        total += weight.astype(np.float32)[:, None] * side.scaled[source]
    if weights.negative_weight:
        most = np.where(side.valid, total, -np.inf).max(axis=1, initial=-np.inf)
        least = np.where(side.valid, total, np.inf).min(axis=1, initial=np.inf)
        pushed: npt.NDArray[np.bool_] = np.any(side.push != 0, axis=1)
        spread = np.where(pushed, most - least, 1.0).astype(np.float64)
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


def informativeness(
    judges: Mapping[int, Judge], weights: RankingSettings, unseen: Mapping[int, int]
) -> float:
    """How far content alone tells what these users went on to: 1 - R / C, C the lower
    bound (one-sided 95%) of content's mean NDCG@10 and R a random list's expected NDCG@10
    (each user's held-out items among the `unseen` items they could be shown); 0 where
    content does not beat a random list beyond noise."""
    alone = holdout.alone(weights, "content")
    found, chance = [], []
    for user, judge in judges.items():
        if judge.fixed is not None or not judge.positives:
            continue
        found.append(holdout.ndcg_of(top(judge, alone), judge.positives, K))
        hit = min(1.0, len(judge.positives) / max(1, unseen[user]))
        ideal = float(_DISCOUNT[: min(len(judge.positives), K)].sum())
        chance.append(hit * float(_DISCOUNT.sum()) / ideal)
    if len(found) < 2:
        return 0.0
    gain = np.array(found) - np.array(chance)
    low = float(gain.mean() - 1.645 * gain.std(ddof=1) / np.sqrt(len(gain)))
    if low <= 0:
        return 0.0
    random = float(np.mean(chance))
    return low / (low + random)
