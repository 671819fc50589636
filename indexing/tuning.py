"""Each build chooses its own settings on its own holdout, then refits on all the data.

The snapshot is split as the evaluation splits it (indexing/holdout.py: each user's newest
20% held out), and up to `evaluate_users` held-out users judge every choice (as many as
`tune_seconds` allows, at least MIN_USERS). The figures reported in the manifest, and each
user's that the quality gate reads (`Tuned.per_user`), are cross-fitted, so they are not the
ones the search was fitted to: the users are divided in two, the blend search is run again
on each half alone, and each half is ranked with the weights chosen on the other.

Within `tune_seconds`, a step is kept only if it raises the judging users' NDCG@10 beyond
noise (indexing/blends.py, `better`). The steps:
  1. model settings, each judged by its own source ranking alone: whether the item-item
     models weigh a pair's evidence or count it 1, EASE lambda, shrinkage of the item-item
     cosine, ALS factors, regularisation and alpha; each tried at the starting value and at
     a few values around it (`candidates`), and one step further the way a value won
     (`further`);
  2. blend weights (indexing/blends.py), on each judged user and on the same user cut to
     their newest few positive items (THIN), so that the weights for little evidence are
     judged too; each user's candidates are scored once, and a trial only re-weights them.
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

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from common.settings import CollaborativeSettings, RankingSettings, Settings
from common.snapshot import Snapshot
from indexing import blends, fitting, holdout, hybrid, ranking, reference, sources
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative
from indexing.profiles import Profile
from indexing.sources.base import positive_part

Say = Callable[[str], None]
Doubles = npt.NDArray[np.float64]
K = 10
# The newest positive items a judged user's profile is cut to, to judge as a user with
# little evidence (by user row, in turn).
THIN = (1, 2, 3, 5)
# The share of the tuning budget the gate's reference may spend refitting models.
REFERENCE_SHARE = 0.5
# Fewer held-out users than this are not split in two to report on.
MIN_SPLIT = 20
MODEL_USERS = 600
MIN_USERS = 300
# The largest share of all interactions the served models may lack (see the docstring).
REFIT_ABOVE = 0.01
# The sources whose model settings (`Source.searched`) are searched first, in this order:
# a later source's settings are judged with the earlier ones' chosen. Any other registered
# source with settings to search follows them, in the registry's order.
SEARCHED_FIRST = ("ease", "cooccurrence", "collaborative")


def model_grid() -> dict[str, str]:
    """Each model setting searched, and the source that judges it, in the order they are
    searched (see SEARCHED_FIRST)."""
    first = [sources.named(name) for name in SEARCHED_FIRST]
    rest = [source for source in sources.REGISTRY if source.name not in SEARCHED_FIRST]
    return {setting: source.name for source in first + rest for setting in source.searched}


def further(name: str, moved_from: Any, value: Any) -> list[Any]:
    """The next value to try after `value` beat `moved_from`: one more step the same way,
    while the settings allow (a grid of three cannot tell that 4x was not far enough)."""
    if name == "item_evidence" or not moved_from or not value:
        return []
    if name == "factors":
        step = min(512, int(value) * 2) if value > moved_from else max(8, int(value) // 2)
        return [step] if step != value else []
    return [value * (value / moved_from)]


def candidates(name: str, start: Any) -> list[Any]:
    """Values tried for a model setting besides its starting value."""
    if name == "item_evidence":
        return ["binary" if start == "weighted" else "weighted"]
    if name == "shrinkage":
        return [0.0, start * 5] if start > 0 else [20.0, 100.0]
    if name == "factors":
        return [float(min(512, int(start) * 2)), float(max(8, int(start) // 2))]
    multiples = {"ease_lambda": (0.5, 2.0), "regularization": (10.0, 0.1), "alpha": (4.0, 0.25)}
    return [start * m for m in multiples[name]]


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
    # For the quality gate: each judged user's NDCG@10 (the same users, in one order) by
    # "hybrid", "popular" and, where a version was active, "reference"; and how the
    # reference was made (indexing/reference.py).
    per_user: dict[str, Doubles] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    # How far content alone told the judged users' held-out items (indexing/blends.py).
    content_informative: float = 0.0

    def chosen(self) -> dict[str, Any]:
        """The values a version is built and served with."""
        return {
            "collaborative": self.collaborative.model_dump(),
            "ranking": {name: getattr(self.ranking, name) for name in blends.WEIGHTS},
        }


def tune(
    snapshot: Snapshot,
    settings: Settings,
    assemble: Callable[..., IndexVersion],
    evidence_of: Callable[[Snapshot, Settings], sp.csr_matrix],
    say: Say | None = None,
    active: Mapping[str, Any] | None = None,
) -> Tuned:
    """Search settings on the snapshot's own holdout and report figures for the choice,
    with, for the quality gate, each judged user's figure for the hybrid, the popular list
    and the `active` version's chosen configuration (indexing/reference.py)."""
    tuned = Tuned(settings.collaborative, settings.ranking)
    limit = settings.index.evaluate_users
    if limit == 0 or len(snapshot.kinds) == 0:
        return tuned
    test = holdout.held_out(snapshot.user_rows, snapshot.times)
    positive = holdout.positive_mask(snapshot, settings, test)
    train, truth = holdout.split(snapshot, settings, test, positive)
    if not truth:
        return tuned
    users = _spread(sorted(truth), limit)
    judged = test & np.isin(snapshot.user_rows, users)
    lack = int(judged.sum())
    served = lack < int(test.sum()) and lack <= REFIT_ABOVE * len(test)
    if served:
        # The judged users' truth is the same: their own split is unchanged.
        train, truth = holdout.split(snapshot, settings, judged, positive)
    version = assemble(train, settings)
    if say is not None:
        say(f"tuning: fitted on the training split ({len(train.user_rows):,} interactions)")
    strength = evidence_of(train, settings)
    first_fit = version.collaborative
    assert first_fit is not None
    # The budget is the search's, after the one fit every build makes. Model settings may
    # take 70% of it; scoring the users for the blend search always gets the other 30%.
    started = time.monotonic()
    models_until = started + 0.7 * settings.index.tune_seconds
    deadline = started + settings.index.tune_seconds

    def ndcg(ranking_settings: RankingSettings | None, users: Iterable[int]) -> Doubles:
        """Each user's NDCG@10."""
        lists = holdout.rank_all(version, settings, ranking_settings, users, K)
        return np.array([holdout.ndcg_of(lists[u], truth[u], K) for u in lists])

    # Model settings are judged by full rankings, a few hundred users at a time.
    model_users = _spread(users, MODEL_USERS)
    for name, source in model_grid().items():
        alone = holdout.alone(settings.ranking, source)
        best = ndcg(alone, model_users)
        start = getattr(tuned.collaborative, name)
        tuned.search.append({"setting": name, "value": start, "ndcg@10": blends.mean(best)})
        # The next candidate's likely cost: the last one's refit and judging, or at first
        # the models' own fit.
        assert version.collaborative is not None
        took = sum(version.collaborative.fit_seconds.get(s, 0.0) for s in _refitted(name))
        queue, tried = candidates(name, start), {start}
        while queue:
            value = queue.pop(0)
            if value in tried:
                continue
            tried.add(value)
            began = time.monotonic()
            # One that would end past the models' share of the time is not begun: at 1M
            # items one EASE refit is a minute, and a second overran the share by as much.
            if began + took > models_until:
                break
            if name == "factors":
                value = int(value)
            candidate = tuned.collaborative.model_copy(update={name: value})
            if name == "item_evidence":
                if _all_alike(strength):  # counting each pair 1 changes nothing
                    continue
                candidate = _rescaled(candidate, tuned.collaborative, strength)
            kept = version.collaborative
            assert kept is not None
            model = kept
            for part in _refitted(name):
                model = fitting.refit(model, part, strength, candidate, settings.index)
            version.collaborative = model
            figure = ndcg(alone, model_users)
            took = time.monotonic() - began
            tuned.search.append({"setting": name, "value": value, "ndcg@10": blends.mean(figure)})
            if blends.better(figure, best):
                moved_from = getattr(tuned.collaborative, name)
                best, tuned.collaborative = figure, candidate
                queue += further(name, moved_from, value)
            else:
                version.collaborative = kept
        if say is not None:
            chosen = getattr(tuned.collaborative, name)
            say(f"tuning: {name} = {chosen} (ndcg {blends.mean(best):.4f})")

    # Scoring a user's candidates is what costs most on a large catalog: past the deadline
    # the users scored so far (at least MIN_USERS, taken in a random order so that any
    # prefix is a fair sample) are the ones the blend is chosen and reported on.
    # The sources' typical spreads and supports, which each user's trust in them is
    # weighed against (indexing/hybrid.py), as the models now stand.
    depth = settings.index.ranking_depth
    version.manifest = version.manifest | {
        "typical": ranking.typical(version, settings.ranking, depth)
    }
    # Each judged user also judges as a user with little evidence: their profile cut to
    # their newest few positive items (THIN), the same held-out items to find. A holdout of
    # rich users alone says nothing of the weights for a new user's first likes.
    cached: dict[int, blends.Judge] = {}
    thin: dict[int, blends.Judge] = {}
    scoring_until = max(deadline, time.monotonic() + 0.3 * settings.index.tune_seconds)
    with threadpool_limits(1, "blas"):  # one user's products are small (as in precompute)
        for n in np.random.default_rng(settings.collaborative.seed).permutation(len(users)):
            if len(cached) >= MIN_USERS and time.monotonic() > scoring_until:
                break
            user = users[n]
            profile = ranking.profile_of(version, version.user_ids[user])
            cached[user] = _cache(version, settings, profile, truth[user], user)
            newest = THIN[user % len(THIN)]
            if len(profile.liked) > newest:
                cut = ranking.cut_to_newest(version, profile, newest)
                thin[user] = _cache(version, settings, cut, truth[user], user)
    users = sorted(cached)
    # How far content alone tells what the judged users went on to: the share of the weight
    # the collaborative sources lack support for that moves to content (indexing/hybrid.py).
    unseen = {u: len(version.item_ids) - len(version.history(u)[0]) for u in users}
    informative = blends.informativeness(cached, settings.ranking, unseen)
    tuned.content_informative = informative
    version.manifest = version.manifest | {"content_informative": informative}
    if say is not None:
        say(f"tuning: content informative {informative:.2f}")

    def weights_on(group: list[int], log: list[dict[str, Any]]) -> RankingSettings:
        judges = [cached[u] for u in group] + [thin[u] for u in group if u in thin]
        return blends.choose(judges, settings.ranking, deadline, log, informative)

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
            lists |= holdout.rank_all(version, settings, weights, ranked, K)
        how = "each half ranked with the weights chosen on the other half"
    else:
        lists = holdout.rank_all(version, settings, tuned.ranking, users, K)
        how = "too few to split: ranked with the weights chosen on them"
    everyone = {u: truth[u] for u in users}
    n_items = len(version.item_ids)
    figures = {"hybrid": holdout.scores(lists, everyone, K, n_items)}
    for source in sources.NAMES:
        alone = holdout.alone(settings.ranking, source)
        top = {u: blends.top(cached[u], alone) for u in users}
        figures[source] = holdout.scores(top, everyone, K, n_items)
    popular = holdout.rank_all(version, settings, None, users, K)
    figures["popular"] = holdout.scores(popular, everyone, K, n_items)
    tuned.per_user = {
        "hybrid": _ndcgs(lists, everyone, users),
        "popular": _ndcgs(popular, everyone, users),
    }
    if active is not None:
        scores, refitted = reference.per_user(
            version,
            first_fit,
            train,
            strength,
            settings,
            active,
            users,
            everyone,
            REFERENCE_SHARE * settings.index.tune_seconds,
            evidence_of,
        )
        tuned.per_user["reference"] = np.array([scores[u] for u in users])
        tuned.reference = refitted
    if served:
        tuned.models, tuned.models_lack = version.collaborative, lack
    tuned.metrics = {
        "protocol": (
            f"newest {holdout.HOLDOUT:.0%} of each user's interactions held out; "
            f"{len(users)} users; hybrid figures: {how}"
        ),
        **holdout.rounded(figures),
    }
    return tuned


def _ndcgs(lists: Mapping[int, list[int]], truth: holdout.Truth, users: list[int]) -> Doubles:
    return np.array([holdout.ndcg_of(lists[u], truth[u], K) for u in users])


def _spread(users: list[int], limit: int) -> list[int]:
    """At most `limit` of the users, spread evenly over them."""
    if len(users) > limit:
        users = [users[int(n)] for n in np.linspace(0, len(users) - 1, limit)]
    return users


def _all_alike(strength: sp.csr_matrix) -> bool:
    """Whether every positive pair has the same evidence (every event a view, say)."""
    x = positive_part(strength)
    return not x.nnz or float(x.data.min()) == float(x.data.max())


def _rescaled(
    candidate: CollaborativeSettings, start: CollaborativeSettings, strength: sp.csr_matrix
) -> CollaborativeSettings:
    """`candidate`, which counts evidence otherwise than `start`, with the penalties that
    are in units of squared evidence (each source's `penalties`: EASE lambda, the cosine's
    shrinkage) moved to match:
    where purchases weigh 3, the Gram matrix of counted pairs is about a ninth of the
    weighted one's, and the same lambda would regularise it nine times as hard. Compared at
    the same lambda, binary evidence won on MovieLens ratings by the lambda alone."""
    x = positive_part(strength)
    squared = float(np.mean(np.square(x.data))) if x.nnz else 1.0
    if squared <= 0:
        return candidate
    ratio = 1.0 / squared if candidate.item_evidence == "binary" else squared
    if start.item_evidence == candidate.item_evidence:
        ratio = 1.0
    penalties = [name for source in sources.REGISTRY for name in source.penalties]
    return candidate.model_copy(
        update={name: _rounded(getattr(start, name) * ratio) for name in penalties}
    )


def _rounded(value: float) -> float:
    """Three significant figures: what a penalty's scale can tell apart."""
    return float(f"{value:.3g}")


def _refitted(name: str) -> tuple[str, ...]:
    """The sources whose models a model setting changes."""
    return tuple(source.name for source in sources.REGISTRY if name in source.fitted_with)


def _cache(
    version: IndexVersion,
    settings: Settings,
    profile: Profile,
    positives: set[int],
    user: int,
) -> blends.Judge:
    excluded = ranking.excluded_rows(version, profile, (), True)
    liked, _ = ranking.positives_in(version, profile)
    if profile.count < settings.index.cold_start_min or not (profile.has_taste or len(liked)):
        popular = ranking.popular(version, depth=K, among=None, excluded=excluded)
        empty = np.zeros(0, dtype=np.float32)
        fixed = popular.rows[:K].tolist()
        return blends.Judge(popular.rows, {}, empty, 0, positives, fixed, user=user)
    blended = ranking.blend_for(
        version, profile, settings.ranking, settings.index.ranking_depth, None, excluded, None
    )
    supported = hybrid.supported(version, liked)
    return blends.Judge(
        blended.rows,
        blended.scaled,
        blended.push,
        supported,
        positives,
        None,
        blended.support,
        user,
    )
