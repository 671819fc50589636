"""User vectors from interaction histories.

A user's vector is the normalised sum of the vectors of the items they touched, each weighted
by its interaction type's weight (negative for dislike and hide, so those pull away) and
decayed with age: w = type_weight * 0.5 ** (age / half_life), age counted back from the user's
own newest interaction, so a taste keeps its shape while the user is away and a returning
user's latest acts weigh most. One sparse product serves both the build (every user) and the
API (the users who just acted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.settings import InteractionSettings
from embeddings.encoder import Vectors, normalise

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def type_weights(
    kinds: Sequence[str] | npt.NDArray[np.object_],
    values: Sequence[float | None] | npt.NDArray[np.float64],
    settings: InteractionSettings,
) -> Floats:
    """Weight of each interaction from its type; ratings interpolate over their five points
    (a rating without a value counts as 3). A value is None or NaN where there is none."""
    kinds_arr = np.asarray(kinds, dtype=object)
    weights = np.zeros(len(kinds_arr), dtype=np.float32)
    for kind in set(kinds_arr.tolist()):
        mask = kinds_arr == kind
        if kind == "rating":
            raw = np.asarray(values, dtype=np.float64)[mask]  # None is NaN here
            raw = np.where(np.isnan(raw), 3.0, raw)
            weights[mask] = np.interp(raw, [1, 2, 3, 4, 5], settings.rating_weights)
        else:
            # A type dropped from configuration since it was stored counts for nothing.
            weights[mask] = settings.interaction_weights.get(kind, 0.0)
    return weights


def decay(
    times: Sequence[datetime] | npt.NDArray[np.float64], as_of: datetime, half_life_days: float
) -> Floats:
    """0.5 ** (age / half_life) for each time; interactions after `as_of` count fully."""
    seconds = np.asarray(
        [t.timestamp() for t in times] if len(times) and isinstance(times[0], datetime) else times,
        dtype=np.float64,
    )
    age = np.maximum(as_of.timestamp() - seconds, 0.0)
    return np.power(0.5, age / (half_life_days * 86_400.0)).astype(np.float32)


def user_decay(user_rows: Ints, times: npt.NDArray[np.float64], half_life_days: float) -> Floats:
    """0.5 ** (age / half_life) per interaction, age behind its user's newest interaction."""
    if len(user_rows) == 0:
        return np.zeros(0, dtype=np.float32)
    newest = np.full(int(user_rows.max()) + 1, -np.inf)
    np.maximum.at(newest, user_rows, times)
    age = newest[user_rows] - times
    return np.power(0.5, age / (half_life_days * 86_400.0)).astype(np.float32)


def user_vectors(
    user_rows: Ints, item_rows: Ints, weights: Floats, n_users: int, item_vectors: Vectors
) -> Vectors:
    """Shape (n_users, d): row u is normalise(sum_i weights[i] * item_vectors[item_rows[i]])
    over the interactions i of user u. Users whose weights cancel out get a zero row."""
    matrix = sp.csr_matrix(
        (weights, (user_rows, item_rows)), shape=(n_users, item_vectors.shape[0]), dtype=np.float32
    )
    return normalise(np.asarray(matrix @ item_vectors, dtype=np.float32))


def evidence(
    weights: Floats, times: npt.NDArray[np.float64], indptr: Ints, half_life_days: float
) -> Floats:
    """How strongly each (user, item) pair says the user wants the item, for the
    collaborative sources: e = w * 0.5 ** (age / half_life) where the pair's net weight w is
    above 0, else 0; age is the time from the pair's newest interaction to its user's newest
    (no decay with half_life 0).

    Pairs are given user by user, as a CSR's data: user u's pairs are [indptr[u], indptr[u+1]).
    So repetition (a net weight that sums every act), the type's weight and recency all grow
    it, and one view is evidence too.
    """
    if len(weights) == 0:
        return np.zeros(0, dtype=np.float32)
    counts = np.diff(indptr)
    starts = indptr[:-1][counts > 0]
    newest = np.repeat(np.maximum.reduceat(times, starts), counts[counts > 0])
    if half_life_days > 0:
        # Floored so that a positive pair from long ago stays positive, however faint.
        fade = np.maximum(np.power(0.5, (newest - times) / (half_life_days * 86_400.0)), 1e-6)
    else:
        fade = np.ones(len(times))
    strength: Floats = np.where(weights > 0, weights * fade, 0.0).astype(np.float32)
    return strength


@dataclass(frozen=True)
class Profile:
    """What ranking knows of a user: taste vector, touched items, and how much history."""

    vector: Floats | None = None
    seen: frozenset[str] = frozenset()
    negative: frozenset[str] = frozenset()  # net weight below zero: disliked or hidden
    count: int = 0
    liked: tuple[str, ...] = ()  # net weight above zero (any positive type), newest first
    evidence: tuple[float, ...] = ()  # of each liked item (indexing/profiles.py), same order
    built: bool = False  # the version's own profile: nothing newer was stored since

    @property
    def has_taste(self) -> bool:
        return self.vector is not None and bool(np.any(self.vector))
