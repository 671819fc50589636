"""Lists ranked at build time, so that a request from a user who has done nothing since the
build is a lookup, not a ranking.

A build ranks the users its version knows, the most active first, exactly as
`indexing.ranking.recommend` answers them from the version's own profile: the version's
blend, no category, seen items excluded, ranked `ranking_depth` deep as the API ranks, and
the hot list of the default trending window as it stands at the build (computed as the
refresh job computes the lists it publishes). It keeps each list's first `precompute_depth`
items, and stops when `precompute_seconds` are spent; the users left are ranked in parts
(below), and a user with no list yet is ranked live. The API answers from a kept list only
when the request is one such a list answers: the user's stored profile says nothing the
build did not know, the request is in no experiment, names no category, excludes seen items
and pages within the depth, and the API ranks with the settings the lists were ranked with
(`KeptLists.ranked_with`). Items deleted since the build
are dropped from a kept list as from any other. What a kept list does not follow is the
trending list after the build: until the next build, an idle user's list moves with
trending only where they are ranked live.

The users the precompute had no time for are ranked in parts of `fill_part_users`, the most
active first (`rank_part`, with the same settings and the same hot list), each part
uploaded beside the version's files and recorded (workers/lists.py). A build that activates
its version ranks them itself, before it activates it, for up to `fill_seconds`: the version
goes live with every user's list unless the catalog is too large for that, and an API
process reads in a version's recorded parts before it serves it (service/serving.py), so no
user it reached is ranked live meanwhile. A build that does not activate its version
(asked not to, rejected by the gate, unchanged) ranks no part. What the build leaves is
ranked by the workers once the version is live, each part a task of its own and announced
as it lands, for up to `fill_seconds` again, stopping as soon as the version is no longer
active or another build is asked for; a build that leaves the version active (unchanged,
rejected, failed) lets that go on.

A build also finds each item's nearest items, the most popular first, within
`similar_seconds`: the API answers similar items for an item of the version from that list
when the request names no category and the list holds `limit` items that are not deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from common.settings import Settings
from indexing import ann, ranking
from indexing.artifacts import IndexVersion, KeptLists, Nearest, Part
from indexing.hybrid import Trend
from indexing.ranking import Ranked

# Users ranked per task of the thread pool: a deadline is checked between batches.
BATCH = 64
# Items searched per call of the item index (FAISS spreads one call over every core).
ITEM_BATCH = 2_048


def ranked_with(version: IndexVersion, settings: Settings) -> dict[str, Any]:
    """What a kept list depends on besides the version: the API compares its own."""
    return {
        "ranking": version.ranking(settings.ranking).model_dump(mode="json"),
        "cold_start_min": settings.index.cold_start_min,
        "ranking_depth": settings.index.ranking_depth,
        "depth": settings.index.precompute_depth,
    }


def rank_users(
    version: IndexVersion,
    settings: Settings,
    *,
    seconds: float,
    threads: int = 1,
    say: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    trending: Trend | None = None,
) -> KeptLists:
    """Rank the version's users who have a history and no kept list yet (all of them, at a
    build), the most active first, for at most `seconds` (by `clock`, checked before each
    batch of BATCH users), with `trending` the hot list served now."""
    n_users = len(version.user_ids)
    deadline = clock() + seconds
    kept = (
        _rank_each(
            version, settings, unranked(version), threads, trending, lambda: clock() > deadline
        )
        if seconds > 0
        else {}
    )
    lengths = np.zeros(n_users, dtype=np.int64)
    for user, ranked in kept.items():
        lengths[user] = len(ranked.rows)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.zeros(int(indptr[-1]), dtype=np.int32)
    scores = np.zeros(int(indptr[-1]), dtype=np.float32)
    popular = np.zeros(n_users, dtype=bool)
    for user, ranked in kept.items():
        rows[indptr[user] : indptr[user + 1]] = ranked.rows
        scores[indptr[user] : indptr[user + 1]] = ranked.scores
        popular[user] = ranked.strategy == "popular"
    if say is not None:
        say(f"precomputed the lists of {len(kept):,} of {n_users:,} users")
    return KeptLists(indptr, rows, scores, popular, ranked_with(version, settings))


def unranked(version: IndexVersion) -> npt.NDArray[np.int64]:
    """The rows of the version's users with a history and no kept list, the most active
    first (ties by row)."""
    activity = np.diff(version.history_indptr)
    if version.lists is not None:
        activity = np.where(np.diff(version.lists.indptr) > 0, 0, activity)
        if version.lists.part_of is not None:
            activity = np.where(version.lists.part_of >= 0, 0, activity)
    order = np.argsort(-activity, kind="stable")
    return order[activity[order] > 0]


def rank_part(
    version: IndexVersion,
    settings: Settings,
    users: npt.NDArray[np.int64],
    *,
    threads: int = 1,
    trending: Trend | None = None,
    late: Callable[[], bool] = lambda: False,
) -> Part:
    """The lists of `users` (rows of the version), ranked as `rank_users` ranks them: a part
    of the lists of the users the build's precompute had no time for.
    `late` is asked before each batch of BATCH users; the part holds those ranked by then."""
    kept = _rank_each(version, settings, users, threads, trending, late)
    users = np.array([u for u in users.tolist() if u in kept], dtype=np.int64)
    ranked = [kept[u] for u in users.tolist()]
    lengths = [len(r.rows) for r in ranked]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.concatenate([r.rows for r in ranked]) if ranked else np.zeros(0)
    scores = np.concatenate([r.scores for r in ranked]) if ranked else np.zeros(0)
    return Part(
        users.astype(np.int64),
        indptr,
        rows.astype(np.int32),
        scores.astype(np.float32),
        np.array([r.strategy == "popular" for r in ranked], dtype=bool),
    )


def _rank_each(
    version: IndexVersion,
    settings: Settings,
    users: npt.NDArray[np.int64],
    threads: int,
    trending: Trend | None,
    late: Callable[[], bool],
) -> dict[int, Ranked]:
    """Each user's list, ranked in batches of BATCH on `threads` threads, as long as `late`
    says no before a batch."""
    depth = settings.index.precompute_depth
    served = version.ranking(settings.ranking)

    def rank(batch: npt.NDArray[np.int64]) -> list[tuple[int, Ranked]]:
        if late():
            return []
        found = []
        for user in batch.tolist():
            profile = ranking.profile_of(version, version.user_ids[user])
            found.append(
                (
                    user,
                    _first(
                        ranking.recommend(
                            version,
                            profile,
                            served,
                            depth=settings.index.ranking_depth,
                            cold_start_min=settings.index.cold_start_min,
                            trending=trending,
                        ),
                        depth,
                    ),
                )
            )
        return found

    kept: dict[int, Ranked] = {}
    if len(users):
        batches = [users[n : n + BATCH] for n in range(0, len(users), BATCH)]
        # One BLAS thread (OpenBLAS's setting is the process's) while the threads rank: one
        # user's products are too small to split, and split they fought the other rankings
        # for the cores (on the 100k bench version: 160 users a second on two cores, not 300).
        with threadpool_limits(1), ThreadPoolExecutor(max(1, threads)) as pool:
            for done in pool.map(rank, batches):
                kept.update(done)
    return kept


def _first(ranked: Ranked, depth: int) -> Ranked:
    """The head of a list ranked as deep as the API ranks (standardisation over the
    candidates and the diversity rerank depend on that depth)."""
    return Ranked(ranked.rows[:depth], ranked.scores[:depth], ranked.strategy)


def nearest_items(
    version: IndexVersion,
    settings: Settings,
    *,
    seconds: float,
    say: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Nearest:
    """Each item's `similar_depth` nearest items by the version's item index, the most
    popular items first, for at most `seconds` (checked before each batch of ITEM_BATCH).

    A search of k results visits the same nodes whatever k is while k stays within the HNSW
    beam (efSearch; the settings keep `similar_depth` below it), so the head of a kept list
    is what the API's own search of fewer results finds, while that search's k (the limit,
    the item and the deleted items) stays within the beam too; ties are ordered as
    `ranking.nearest` orders them (by row)."""
    n_items = len(version.item_ids)
    depth = settings.index.similar_depth
    beam = version.similar_ef  # as the API searches this version
    deadline = clock() + seconds
    items, found, scored = [], [], []
    for start in range(0, n_items if seconds > 0 else 0, ITEM_BATCH):
        if clock() > deadline:
            break
        batch = version.popular_rows[start : start + ITEM_BATCH]
        scores, rows = ann.search(
            version.item_index, version.item_vectors[batch], depth + 1, ef=beam
        )
        keep = (rows >= 0) & (rows != batch[:, None])
        keep &= np.cumsum(keep, axis=1) <= depth
        items.append(np.repeat(batch, keep.sum(axis=1)))
        found.append(rows[keep])
        scored.append(scores[keep])
    item = np.concatenate(items) if items else np.zeros(0, dtype=np.int64)
    rows = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    scores = np.concatenate(scored) if scored else np.zeros(0, dtype=np.float32)
    order = np.lexsort((rows, -scores, item))  # by item, then best first, ties by row
    lengths = np.bincount(item, minlength=n_items)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    nearest = Nearest(indptr, rows[order].astype(np.int32), scores[order].astype(np.float32), depth)
    if say is not None:
        say(f"found the nearest items of {nearest.items:,} of {n_items:,} items")
    return nearest
