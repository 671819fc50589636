"""Every registered source keeps the interface (indexing/sources/base.py), and the registry
is what the blend, the fit, the explanations, the tuning and the weight settings go
through: a source swapped in the registry is the one they use."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from common.settings import CollaborativeSettings, IndexSettings, RankingSettings
from indexing import (
    blends,
    build,
    explanations,
    fitting,
    holdout,
    hybrid,
    listwise,
    ranking,
    reference,
    rowsums,
    sources,
    tuning,
)
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative
from indexing.sources.base import Floats, Rows, Source, Training, User
from indexing.subsets import Subset
from tests.indexing import test_build


@pytest.fixture(scope="module")
def version() -> IndexVersion:
    return build.assemble(test_build.snapshot(), test_build.small_settings())


def a_user(version: IndexVersion, settings: RankingSettings) -> User:
    profile = ranking.profile_of(version, version.user_ids[3])
    liked, strength = ranking.positives_in(version, profile)
    trend = hybrid.Trend(version.popularity, version.engaged_rows)
    return User(version, settings, liked, strength, profile.vector, trend)


def test_every_registered_source_keeps_the_interface(version: IndexVersion) -> None:
    names = [source.name for source in sources.REGISTRY]
    assert len(set(names)) == len(names) and tuple(names) == sources.NAMES == hybrid.SOURCES
    settings = test_build.small_settings()
    training = Training(build.snapshot_evidence(test_build.snapshot(), settings), *_models())
    parts = {f.name for f in dataclasses.fields(Collaborative) if f.init}
    fitted: dict[str, Any] = {}
    user = a_user(version, settings.ranking)
    everything = np.arange(len(version.item_ids), dtype=np.int64)
    with rowsums.scratch(len(everything)) as sums:
        for source in sources.REGISTRY:
            assert isinstance(source, Source)
            # Its weights are settings; the model settings it names are settings too.
            assert source.weight in RankingSettings.model_fields
            assert source.cold_weight is None or source.cold_weight in RankingSettings.model_fields
            assert set(source.fitted_with) <= set(CollaborativeSettings.model_fields)
            assert set(source.searched) | set(source.penalties) <= set(source.fitted_with)
            made = source.fit(training)
            assert set(made) <= parts and bool(made) == bool(source.fitted_with), source.name
            fitted |= made
            # It scores any row, and proposes its best: this user has a taste, positive
            # items and a trending list, so every source has something to say.
            scorer = source.scorer(user, sums)
            assert scorer is not None, source.name
            scores = scorer.scores(everything)
            assert scores.shape == everything.shape and scores.dtype == np.float32
            proposed = scorer.propose(5, None)
            assert 0 < len(proposed) <= 5 and proposed.dtype == np.int64, source.name
            assert scores[proposed].min() >= np.sort(scores)[-5] - 1e-5, source.name
            if source.from_others:
                assert 0.0 < source.support(user) <= 1.0
            said = source.explain(version, int(proposed[0]), user.liked, user.recent)
            assert isinstance(said, str) and said, source.name
    # Between them the sources fit every model a version serves.
    assert {"factor_index", "neighbours", "ease", "following"} <= set(fitted)
    # The gate's reference refits the parts the build searches by the same settings.
    searched = {s.name: s.fitted_with for s in sources.REGISTRY if s.searched}
    assert searched == reference.PARTS


def _models() -> tuple[CollaborativeSettings, IndexSettings]:
    settings = test_build.small_settings()
    return settings.collaborative, settings.index


def test_the_weight_settings_are_the_registrys() -> None:
    weights = sources.weight_settings()
    assert (*weights, "negative_weight") == blends.WEIGHTS
    assert sorted(listwise.names()) == sorted(weights)
    assert set(weights) <= set(RankingSettings.model_fields)
    chosen = tuning.Tuned(CollaborativeSettings(), RankingSettings()).chosen()
    assert tuple(chosen["ranking"]) == blends.WEIGHTS
    cold = hybrid.cold_weights(RankingSettings(recent_weight=0.7))
    assert cold == {"content": 1.0, "recent": 0.7, "sequence": 0.5, "trending": 0.5}


def test_the_model_search_goes_through_the_sources_settings() -> None:
    assert tuning.model_grid() == {
        "item_evidence": "ease",
        "ease_lambda": "ease",
        "shrinkage": "cooccurrence",
        "factors": "collaborative",
        "regularization": "collaborative",
        "alpha": "collaborative",
    }
    assert tuning._refitted("item_evidence") == ("ease", "cooccurrence")
    assert tuning._refitted("ease_lambda") == ("ease",)


class Planted(Source):
    """A stand-in for the sequence source: one item, always, whatever the user."""

    name = "sequence"
    cold = "steady"
    fitted_with = ("sequence_window",)
    searched = ("sequence_window",)
    row = 17

    def fit(self, training: Training) -> dict[str, Any]:
        n_items = training.evidence.shape[1]
        return {"following": sp.identity(n_items, dtype=np.float32, format="csr")}

    def scorer(self, user: User, sums: rowsums.RowSums) -> Planted.Scores:
        return Planted.Scores()

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str:
        return "planted here"

    class Scores:
        def propose(self, k: int, among: Subset | None) -> Rows:
            return np.array([Planted.row], dtype=np.int64)

        def scores(self, rows: Rows) -> Floats:
            return (rows == Planted.row).astype(np.float32)


def test_a_source_swapped_in_the_registry_is_the_one_used(
    version: IndexVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = Planted()
    swapped = tuple(planted if s.name == "sequence" else s for s in sources.REGISTRY)
    monkeypatch.setattr(sources, "REGISTRY", swapped)
    # The fit.
    settings = test_build.small_settings()
    model = fitting.fit(build.snapshot_evidence(test_build.snapshot(), settings), *_models())
    assert (model.following != sp.identity(60, format="csr")).nnz == 0
    # The tuning: its setting is searched after the others, and refits it alone.
    assert list(tuning.model_grid())[-1] == "sequence_window"
    assert tuning._refitted("sequence_window") == ("sequence",)
    # The blend: its candidate is among the user's, scored as it says.
    alone = holdout.alone(RankingSettings(), "sequence")
    profile = ranking.profile_of(version, version.user_ids[3])
    assert Planted.row not in ranking.excluded_rows(version, profile, (), True)
    blended = ranking.blend_for(version, profile, alone, 5, None, (), None)
    at = int(np.flatnonzero(blended.rows == Planted.row)[0])
    assert blended.raw["sequence"].tolist() == (blended.rows == Planted.row).tolist()
    assert ranking.recommend(version, profile, alone, depth=1, cold_start_min=1).rows[0] == 17
    # The explanation.
    liked = ranking.rows_in_order(version, profile.liked)
    assert explanations.reasons(version, blended, at, liked, liked[:3]) == ["planted here"]
