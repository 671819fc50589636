"""The session protocol: next-item prediction for a visitor who has not signed in.

Each evaluated user's newest `size` training interactions (newest last, with their types)
stand for an anonymous session; their held-out positives are the truth. The session is
ranked as POST /api/v1/recommendations ranks it (ranking.session_profile, then the same
ranking code as a user's list), and Pop, ItemKNN and EASE, learnt from the whole training
part, score the same session's items. Every list leaves out only the session's own items,
as the endpoint does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from common.settings import Settings
from common.snapshot import Snapshot
from indexing import baselines, holdout, ranking
from indexing.artifacts import IndexVersion

Figures = dict[str, dict[str, float]]
# Items a session holds: a visit of a few pages.
SESSION_ITEMS = 5
EASE_LAMBDAS = (25.0, 100.0, 400.0, 1600.0)


def sessions_of(train: Snapshot, users: list[int], size: int) -> dict[int, list[int]]:
    """Each user's newest `size` training interactions, as indexes into the snapshot's
    interactions, oldest first."""
    order = np.lexsort((train.times, train.user_rows))
    by_user = train.user_rows[order]
    starts = np.searchsorted(by_user, users, side="left")
    ends = np.searchsorted(by_user, users, side="right")
    return {
        u: order[max(start, end - size) : end].tolist()
        for u, start, end in zip(users, starts.tolist(), ends.tolist(), strict=True)
        if end > start
    }


def evaluate(
    version: IndexVersion,
    settings: Settings,
    train: Snapshot,
    truth: holdout.Truth,
    *,
    k: int = 10,
    size: int = SESSION_ITEMS,
    say: Callable[[str], None] | None = None,
) -> Figures:
    """Figures for the session list and for each baseline, on the same sessions."""
    sessions = sessions_of(train, sorted(truth), size)
    users = sorted(sessions)
    asked = {u: truth[u] for u in users}
    n_items = len(train.item_ids)
    excluded = {u: sorted({int(train.item_rows[n]) for n in sessions[u]}) for u in users}
    results: Figures = {}
    if say is not None:
        say(f"sessions of {size}: ranking {len(users)} sessions")
    results["hybrid"] = holdout.scores(
        _ours(version, settings, train, sessions, k), asked, k, n_items
    )
    x = sp.csr_matrix(
        (np.ones(len(train.kinds), dtype=np.float32), (train.user_rows, train.item_rows)),
        shape=(len(train.user_ids), n_items),
    )
    x.data[:] = 1.0
    queries = sp.csr_matrix(
        (
            np.ones(sum(len(excluded[u]) for u in users), dtype=np.float32),
            (
                np.repeat(np.arange(len(users)), [len(excluded[u]) for u in users]),
                np.concatenate([excluded[u] for u in users]).astype(np.int64),
            ),
        ),
        shape=(len(users), n_items),
    )
    popular = baselines.pop(x)
    for name in ("Pop", "ItemKNN", *(f"EASE l={lam:g}" for lam in EASE_LAMBDAS)):
        if say is not None:
            say(f"sessions: {name}")
        if name == "Pop":
            found: baselines.Scores = np.broadcast_to(popular, (len(users), n_items))
        elif name == "ItemKNN":
            found = baselines.item_knn_for(x, queries)
        else:
            found = baselines.ease_for(x, queries, float(name.split("=")[1]))
        lists = {u: baselines.top_k(found[n], excluded[u], k) for n, u in enumerate(users)}
        results[name] = holdout.scores(lists, asked, k, n_items)
    return results


def _ours(
    version: IndexVersion,
    settings: Settings,
    train: Snapshot,
    sessions: dict[int, list[int]],
    k: int,
) -> dict[int, list[int]]:
    ranking_settings = version.ranking(settings.ranking)
    depth = max(k, settings.index.ranking_depth)
    lists = {}
    with threadpool_limits(1, "blas"):
        for user, touched in sessions.items():
            ids = [train.item_ids[int(train.item_rows[n])] for n in touched]
            types = [train.kinds[n] for n in touched]
            profile = ranking.session_profile(version, ids, types, settings.interactions)
            ranked = ranking.recommend(
                version,
                profile,
                ranking_settings,
                strategy="hybrid",
                depth=depth,
                cold_start_min=settings.index.cold_start_min,
            )
            lists[user] = ranked.rows[:k].tolist()
    return lists
