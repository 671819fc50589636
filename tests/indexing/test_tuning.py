"""The build's own search (indexing/tuning.py, indexing/blends.py): it moves only on evidence,
and finds a source that says it all."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from common.settings import RankingSettings
from indexing import blends, build, fitting, holdout, hybrid, tuning
from indexing.blends import Judge, Side, better, choose, judged, top
from indexing.collaborative import Collaborative
from tests.indexing import test_build


def test_a_gain_inside_the_noise_is_not_taken() -> None:
    rng = np.random.default_rng(3)
    best = rng.uniform(0, 1, 300)
    noisy = best + rng.normal(0.0, 0.2, 300)  # mean gain ~0, large spread
    noisy += 0.002 - (noisy - best).mean()  # a mean gain of exactly 0.002
    assert not better(noisy, best)
    clear = best + 0.05 + rng.normal(0.0, 0.02, 300)
    assert better(clear, best)
    assert not better(best, best)
    assert not better(best[:0], best[:0])


def users_where_one_source_knows(source: str, n_users: int = 200) -> list[Judge]:
    """Each user has 50 candidates and 2 positives; `source` scores the positives highest,
    every other source scores at random."""
    rng = np.random.default_rng(8)
    cached = []
    for user in range(n_users):
        rows = np.arange(50, dtype=np.int64)
        positives = {int(r) for r in rng.choice(50, 2, replace=False)}
        scaled = {}
        for name in hybrid.SOURCES:
            values = rng.standard_normal(50).astype(np.float32)
            if name == source:
                values[list(positives)] += 3.0
            scaled[name] = hybrid.standardised(values)
        cached.append(
            Judge(rows, scaled, np.zeros(50, np.float32), 20, positives, fixed=None, user=user)
        )
    return cached


@pytest.mark.parametrize(("negative_weight", "informative"), [(0.0, 0.0), (2.0, 0.0), (2.0, 0.7)])
def test_every_user_is_scored_at_once_as_each_is_alone(
    negative_weight: float, informative: float
) -> None:
    """Thin support moving weight to content included (`informative`)."""
    rng = np.random.default_rng(int(negative_weight))
    cached = []
    for n in range(300):
        count = int(rng.choice([0, 3, 10, 40, 120]))
        rows = rng.choice(1_000, count, replace=False).astype(np.int64)  # ties: by row, not place
        # Coarse scores, so that whole runs of candidates tie and the row decides.
        scaled = {
            s: np.round(rng.standard_normal(count), 1).astype(np.float32) for s in hybrid.SOURCES
        }
        push = np.where(rng.random(count) < 0.2, rng.random(count), 0).astype(np.float32)
        if n % 3 == 0:
            push[:] = 0
        positives = {int(r) for r in rng.choice(1_000, 5, replace=False)} | set(rows[:2].tolist())
        fixed = [int(r) for r in rng.choice(1_000, 10)] if n % 7 == 0 else None
        liked = float(rng.uniform(0, 30))
        support = {k: float(rng.uniform(0, 1)) for k in hybrid.FROM_OTHERS if rng.random() < 0.8}
        cached.append(Judge(rows, scaled, push, liked, positives, fixed, support, user=n))
    side = Side.of(cached, informative)
    for blend in [
        RankingSettings(negative_weight=negative_weight),
        RankingSettings(negative_weight=negative_weight, ease_weight=0.0, recent_weight=3.0),
        RankingSettings(negative_weight=negative_weight, adapt_at=1.0, cold_trending_weight=0),
    ]:
        alone = [
            holdout.ndcg_of(top(user, blend, informative), user.positives, 10) for user in cached
        ]
        np.testing.assert_allclose(judged(side, blend), alone, rtol=0, atol=1e-12)
        # The listwise fit's shares of each setting in each source rebuild the same weights.
        shares = side.design(blend.adapt_at)
        rebuilt = {source: np.zeros(len(side.ranked)) for source in hybrid.SOURCES}
        for name, by_source in shares.items():
            for source, share in by_source.items():
                rebuilt[source] += getattr(blend, name) * share
        for source, weight in blends.weight_arrays(side, blend).items():
            np.testing.assert_allclose(rebuilt[source], weight, rtol=1e-9, atol=1e-12)


def test_the_search_finds_the_one_source_that_knows_and_drops_the_noise() -> None:
    cached = users_where_one_source_knows("ease")
    configured = RankingSettings()
    log: list[dict[str, object]] = []
    chosen = choose(cached, configured, deadline=0.0, log=log)
    # The configured blend drowns EASE in five noisy sources; the choice does not.
    side = Side.of(cached)
    assert judged(side, chosen).mean() > judged(side, configured).mean() + 0.2
    assert chosen.ease_weight > 0
    others = [getattr(chosen, f"{s}_weight") for s in hybrid.SOURCES if s != "ease"]
    assert sum(others) <= 0.5 * chosen.ease_weight
    assert log[0]["value"] == "configured" and log[1]["value"] == "ease (equal)"


@pytest.mark.parametrize("seed", range(5))
def test_with_nothing_to_learn_the_configured_blend_stays(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cached = []
    for user in range(600):
        rows = np.arange(50, dtype=np.int64)
        scaled = {
            name: hybrid.standardised(rng.standard_normal(50).astype(np.float32))
            for name in hybrid.SOURCES
        }
        positives = {int(r) for r in rng.choice(50, 2, replace=False)}
        cached.append(Judge(rows, scaled, np.zeros(50, np.float32), 20, positives, None, user=user))
    configured = RankingSettings()
    chosen = choose(cached, configured, deadline=0.0, log=[])
    moved = [w for w in blends.WEIGHTS if getattr(chosen, w) != getattr(configured, w)]
    # 128 equal blends and 26 coordinate steps tried on pure noise, a step kept past one
    # standard error: a few stray steps (about one in six passes by chance), not a new blend.
    assert len(moved) <= 4, moved


def test_a_refit_that_would_overrun_the_models_time_is_not_begun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = test_build.small_settings(tune_seconds=5.0, evaluate_users=30)
    refits: list[str] = []
    refit = fitting.refit

    def counted(model: Collaborative, source: str, *args: Any) -> Collaborative:
        refits.append(source)
        return refit(model, source, *args)

    fit = fitting.fit

    def slow_ease(*args: Any, **kwargs: Any) -> Collaborative:
        model = fit(*args, **kwargs)
        model.fit_seconds["ease"] = 60.0  # as EASE at a million items
        return model

    monkeypatch.setattr(fitting, "refit", counted)
    monkeypatch.setattr(fitting, "fit", slow_ease)
    _, tuned = build.fit(test_build.snapshot(), settings)
    # Only the first fit's 60 s EASE would have overrun the 3.5 s for models: no setting
    # that refits it is tried (its evidence, its lambda).
    assert "ease" not in refits
    assert {"cooccurrence", "collaborative"} <= set(refits)
    searched = [s["setting"] for s in tuned.search]
    assert searched.count("ease_lambda") == searched.count("item_evidence") == 1


def test_a_value_that_wins_is_followed_one_step_further_the_same_way() -> None:
    assert tuning.further("ease_lambda", 200.0, 50.0) == [12.5]
    assert tuning.further("alpha", 2.0, 8.0) == [32.0]
    assert tuning.further("factors", 64, 128) == [256] and tuning.further("factors", 64, 32) == [16]
    assert tuning.further("factors", 256, 512) == []  # as far as factors go
    assert tuning.further("shrinkage", 20.0, 0.0) == []  # no further than none
    assert tuning.further("item_evidence", "weighted", "binary") == []


def test_a_user_and_their_cut_profile_judge_as_one_user() -> None:
    rows = np.arange(5, dtype=np.int64)
    scaled = {s: np.linspace(1, 0, 5).astype(np.float32) for s in hybrid.SOURCES}
    push = np.zeros(5, np.float32)
    judges = [
        Judge(rows, scaled, push, 10.0, {0}, None, user=7),  # finds its item first
        Judge(rows, scaled, push, 1.0, {4}, None, user=7),  # its cut profile, fifth
        Judge(rows, scaled, push, 10.0, {1}, None, user=3),
    ]
    side = Side.of(judges)
    each = judged(side, RankingSettings())
    np.testing.assert_allclose(side.per_user(each), [each[2], (each[0] + each[1]) / 2])
    # Halves of the listwise fit fall by user: both of user 7's judges in one.
    assert (side.users[side.ranked] % 2).tolist() == [1, 1, 1]
