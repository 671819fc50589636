"""Implicit ALS (indexing/sources/als.py): a user's factors solve Hu, Koren and Volinsky's
objective."""

from __future__ import annotations

import numpy as np
import pytest

from common.settings import CollaborativeSettings, IndexSettings
from indexing import fitting
from indexing.sources import als
from tests.indexing.sources.test_ease import random_matrix


def test_a_users_factors_solve_the_confidence_weighted_least_squares() -> None:
    """x_u minimises sum_i c_i (p_i - x . y_i)^2 + reg |x|^2, c_i = 1 + alpha e_i on the user's
    items (p_i = 1) and 1 elsewhere (p_i = 0): Hu, Koren and Volinsky's objective."""
    x = random_matrix(60, 30, 0.2, seed=4)
    settings = CollaborativeSettings(factors=6, regularization=0.3, alpha=2.0, iterations=5)
    model = fitting.fit(x, settings, IndexSettings())
    y = model.item_factors.astype(np.float64)
    rows = np.array([3, 7, 11], dtype=np.int64)
    strength = np.array([1.0, 3.0, 0.5], dtype=np.float32)
    c = np.ones(30)
    c[rows] += settings.alpha * strength
    p = np.zeros(30)
    p[rows] = 1.0
    expected = np.linalg.solve(y.T @ (c[:, None] * y) + 0.3 * np.eye(6), y.T @ (c * p))
    found = als.user_factors(model, rows, strength)
    assert found == pytest.approx(expected, rel=1e-3, abs=1e-5)
    # No evidence given: each item counts 1; no items: no factors.
    ones = als.user_factors(model, rows)
    assert ones == pytest.approx(als.user_factors(model, rows, np.ones(3, dtype=np.float32)))
    assert not als.user_factors(model, rows[:0]).any()
