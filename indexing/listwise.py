"""Blend weights fitted to held-out hits by a listwise loss, as one start of the build's
blend search (indexing/blends.py).

A blend scores a user's candidate c as s(c) = sum_k w_k z_k(c) (z_k: source k's scaled
score), and each weight w_k is linear in the weight settings theta (indexing/hybrid.py,
`weights_for`): w_k = sum_p theta_p a_pk, with a_pk each user's share of setting p in source
k (h for a rich weight, 1 - h for a cold one, 1 for `recent` and `sequence`, and what moves
to content where support is thin). So s(c) = sum_p theta_p f_p(c), f_p = sum_k a_pk z_k, and
the settings minimise the listwise softmax cross-entropy of the users' held-out hits
(ListNet: Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach",
ICML 2007),

    L = mean over users with a hit of  -log( sum_{c in hits} e^s(c) / sum_{c} e^s(c) )
        + RIDGE * |theta|^2,   theta >= 0,

by L-BFGS-B. Its optimum is not NDCG's, and the search judges it on users it was not fitted
on before it keeps it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.optimize

from indexing import sources

Doubles = npt.NDArray[np.float64]
# The sources by how their weight settings make their features (`Source.cold`): a rich
# weight's share is h, a steady one's 1, a cold one's 1 - h.
RICH = tuple(s.name for s in sources.REGISTRY if s.cold != "steady")
STEADY = tuple(s.name for s in sources.REGISTRY if s.cold == "steady")
COLD = tuple(sources.own_cold_weights())
RIDGE = 1e-3
ITERATIONS = 100
# The users with a hit among their candidates one fit learns from, at most (spread over them).
USERS = 1_000


def names() -> list[str]:
    """The settings the fit chooses, in the order of its parameters."""
    cold = sources.own_cold_weights()
    return [sources.named(s).weight for s in RICH + STEADY] + [cold[s] for s in COLD]


def fit(
    scaled: dict[str, npt.NDArray[np.float32]],
    valid: npt.NDArray[np.bool_],
    hit: npt.NDArray[np.bool_],
    design: dict[str, dict[str, Doubles]],
    start: dict[str, float],
) -> dict[str, float] | None:
    """The weight settings, by name, that fit these users' hits best (largest 1); None
    where no user has a hit among their candidates.

    `scaled` holds each source's scaled scores, (users, width), `valid` marks the real
    candidates of each padded row, `hit` the held-out positives among them, and `design`
    each setting's per-user share in each source (a_pk, by setting and source). `start`
    (by name) is where the search begins."""
    useful = np.flatnonzero((hit & valid).any(axis=1))
    if not len(useful):
        return None
    if len(useful) > USERS:  # a few parameters: a thousand users fit them as well as all
        useful = useful[np.linspace(0, len(useful) - 1, USERS).astype(np.int64)]
    columns = []
    for name in names():
        column = np.zeros(scaled["content"][useful].shape, dtype=np.float32)
        for source, share in design[name].items():
            column += np.asarray(share, dtype=np.float32)[useful, None] * scaled[source][useful]
        columns.append(column)
    features = np.stack(columns, axis=-1)  # (users, width, parameters)
    mask = valid[useful]
    hits = hit[useful] & mask

    def loss(theta: Doubles) -> tuple[float, Doubles]:
        score = (features @ theta.astype(np.float32)).astype(np.float64)
        score = np.where(mask, score, -np.inf)
        top = score.max(axis=1, keepdims=True)
        every = np.exp(score - top)
        chosen = np.where(hits, every, 0.0)
        total, found = every.sum(axis=1), chosen.sum(axis=1)
        value = float(np.mean(np.log(total) - np.log(found))) + RIDGE * float(theta @ theta)
        # d/dtheta: the softmax's mean feature less the mean feature over the hits alone.
        weights = every / total[:, None] - chosen / found[:, None]
        gradient = np.einsum("uw,uwp->p", weights, features, dtype=np.float64) / len(useful)
        return value, gradient + 2 * RIDGE * theta

    first = np.array([start[name] for name in names()], dtype=np.float64)
    found = scipy.optimize.minimize(
        loss,
        first,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * len(first),
        options={"maxiter": ITERATIONS},
    )
    theta = np.maximum(found.x, 0.0)
    if not theta.any():
        return None
    theta /= theta.max()
    return {name: float(value) for name, value in zip(names(), theta, strict=True)}
