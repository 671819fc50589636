from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from common.settings import InteractionSettings
from indexing.profiles import decay, type_weights, user_vectors

ITEMS = np.eye(4, dtype=np.float32)  # four orthogonal item vectors


def one_user_vector(items: np.ndarray, weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    return user_vectors(np.zeros(len(items), dtype=np.int64), items, weights, 1, vectors)[0]


def test_type_weights_follow_configuration_and_ratings_interpolate() -> None:
    weights = type_weights(
        ["view", "dislike", "rating", "rating", "retired"],
        [None, None, 5, 3.5, None],
        InteractionSettings(),
    )
    assert weights.tolist() == pytest.approx([1.0, -2.0, 3.0, 1.5, 0.0])


def test_decay_halves_every_half_life() -> None:
    now = datetime(2025, 1, 31, tzinfo=UTC)
    times = [now, now - timedelta(days=10), now - timedelta(days=20), now + timedelta(days=1)]
    assert decay(times, now, 10).tolist() == pytest.approx([1.0, 0.5, 0.25, 1.0])


def test_a_user_vector_is_the_normalised_weighted_sum() -> None:
    vector = one_user_vector(np.array([0, 1]), np.array([3.0, 1.0], np.float32), ITEMS)
    assert vector.tolist() == pytest.approx([3 / np.sqrt(10), 1 / np.sqrt(10), 0, 0])


def test_negative_interactions_pull_away() -> None:
    vector = one_user_vector(np.array([0, 1]), np.array([2.0, -2.0], np.float32), ITEMS)
    assert vector[0] > 0 > vector[1]


def test_all_users_at_once_equal_one_at_a_time() -> None:
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([0, 1, 2, 0, 3, 3])
    weights = np.array([1, 2, 1, -1, 1, 1], dtype=np.float32)
    together = user_vectors(users, items, weights, 3, ITEMS)
    for user in range(3):
        mine = users == user
        alone = one_user_vector(items[mine], weights[mine], ITEMS)
        assert together[user] == pytest.approx(alone)


def test_weights_that_cancel_give_a_zero_vector() -> None:
    vector = one_user_vector(np.array([0, 0]), np.array([2.0, -2.0], np.float32), ITEMS)
    assert not vector.any()
