"""The models a version serves, fitted together (indexing/collaborative.py): from any
positive evidence, each part by its source, refitted one part at a time. Each source's
model is held to its formula in tests/indexing/sources/."""

from __future__ import annotations

import numpy as np
import pytest

from common.settings import CollaborativeSettings, IndexSettings
from indexing import fitting, rowsums
from indexing.profiles import evidence
from indexing.sources import als, cooccurrence, ease, sequence
from tests.indexing.sources.test_ease import random_matrix


def test_evidence_grows_with_weight_repetition_and_recency() -> None:
    day = 86_400.0
    # One user: a view, two views (net 2), a purchase, a view 30 days before the rest, a dislike.
    weights = np.array([1.0, 2.0, 3.0, 1.0, -2.0], dtype=np.float32)
    times = np.array([30, 30, 30, 0, 30], dtype=np.float64) * day
    indptr = np.array([0, 5], dtype=np.int64)
    plain = evidence(weights, times, indptr, half_life_days=0.0)
    assert plain.tolist() == [1.0, 2.0, 3.0, 1.0, 0.0]
    faded = evidence(weights, times, indptr, half_life_days=30.0)
    assert faded[:3].tolist() == [1.0, 2.0, 3.0]
    assert faded[3] == pytest.approx(0.5) and faded[4] == 0.0


def test_a_view_only_history_is_collaborative_evidence() -> None:
    views = random_matrix(80, 25, 0.2, seed=5)
    views.data[:] = 1.0
    model = fitting.fit(views, CollaborativeSettings(factors=4), IndexSettings())
    rows = views.indices[views.indptr[0] : views.indptr[1]].astype(np.int64)
    assert np.any(als.user_factors(model, rows))
    with rowsums.scratch(25) as sums:
        for matrix in (model.ease, model.neighbours):
            which = sums.take()
            sums.add(which, matrix, rows, np.ones(len(rows), dtype=np.float32))
            assert sums.sums[which].any()
    assert model.item_factors.shape == (25, 4)


def test_each_part_is_its_sources_fit_and_a_refit_replaces_only_its_own() -> None:
    x = random_matrix(80, 30, 0.2, seed=6)
    settings = CollaborativeSettings(factors=4, iterations=3, ease_lambda=30.0, shrinkage=5.0)
    rows = np.array([0, 0, 1, 1], dtype=np.int64)
    items = np.array([2, 5, 2, 5], dtype=np.int64)
    times = np.array([1.0, 2.0, 1.0, 2.0])
    followed = sequence.sequences_of(rows, items, times)
    model = fitting.fit(x, settings, IndexSettings(), followed)
    assert (model.ease != ease.ease(x, 30.0, 20_000, 1_000)).nnz == 0
    assert (model.neighbours != cooccurrence.cosine(x, 200, 5.0)).nnz == 0
    assert model.following[2, 5] == pytest.approx(2 / (2 + sequence.SEQUENCE_SHRINK))
    assert set(model.fit_seconds) == {"collaborative", "ease", "cooccurrence", "sequence"}
    # Without sequences nothing follows anything.
    assert fitting.fit(x, settings, IndexSettings()).following.nnz == 0

    binary = settings.model_copy(update={"item_evidence": "binary", "ease_lambda": 5.0})
    refitted = fitting.refit(model, "ease", x, binary, IndexSettings())
    ones = x.copy()
    ones.data[:] = 1.0
    assert (refitted.ease != ease.ease(ones, 5.0, 20_000, 1_000)).nnz == 0
    assert refitted.binary and refitted.neighbours is model.neighbours
    assert refitted.factor_index is model.factor_index and refitted.following is model.following
    stronger = settings.model_copy(update={"regularization": 3.0})
    factors = fitting.refit(model, "collaborative", x, stronger, IndexSettings())
    assert factors.regularization == 3.0 and factors.ease is model.ease
    with pytest.raises(ValueError, match="no model the build searches"):
        fitting.refit(model, "sequence", x, settings, IndexSettings())
