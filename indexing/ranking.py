"""Retrieval over a loaded version: plain functions the API and the evaluation both call.

Every ranked list is deterministic for the same inputs: scores descending, ties broken by
row, so that `offset` pages through one stable list.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from common.settings import InteractionSettings, RankingSettings
from embeddings.encoder import normalise
from indexing import ann, hybrid, sources
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats, Profile, evidence, type_weights
from indexing.subsets import Subset

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Ranked:
    rows: Rows
    scores: Floats
    strategy: str = "personalized"


def profile_of(version: IndexVersion, user_id: str) -> Profile:
    """A user's profile as of the version's build; empty for a user it does not know."""
    row = version.user_row.get(user_id)
    if row is None:
        return Profile()
    items, weights = version.history(row)
    ids = [version.item_ids[i] for i in items]
    half_life = version.collaborative.half_life_days if version.collaborative else 0.0
    liked, strength = newest_first(ids, weights, version.history_at(row), half_life)
    return Profile(
        vector=version.user_vectors[row],
        seen=frozenset(ids),
        negative=frozenset(i for i, w in zip(ids, weights.tolist(), strict=True) if w < 0),
        count=len(ids),
        liked=liked,
        evidence=strength,
        built=True,
    )


def cut_to_newest(version: IndexVersion, profile: Profile, count: int) -> Profile:
    """`profile` as if the user had liked only their `count` newest positive items, their
    taste made of those alone (weighed by their evidence: a newcomer's taste weighs the
    same items by type and age, alike for items this new), no rejected items; everything
    else they touched stays seen (the tuning's stand-in for a user with little evidence)."""
    liked, strength = profile.liked[:count], profile.evidence[:count]
    rows = rows_in_order(version, liked)
    weights = np.array(strength[: len(rows)], dtype=np.float32)
    vector = normalise((weights @ version.item_vectors[rows])[None, :])[0]
    return replace(
        profile,
        vector=vector,
        negative=frozenset(),
        count=count,
        liked=liked,
        evidence=strength,
        built=False,
    )


def newest_first(
    ids: Sequence[str],
    weights: Floats,
    times: npt.NDArray[np.float64],
    half_life_days: float,
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """One history's positive items (net weight above 0), newest first (ties by id), with
    the evidence of each."""
    weights = np.asarray(weights, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64)
    strength = evidence(weights, times, np.array([0, len(ids)], dtype=np.int64), half_life_days)
    liked = [
        (-float(t), i, float(e))
        for i, w, t, e in zip(ids, weights, times, strength, strict=True)
        if w > 0
    ]
    liked.sort(key=lambda entry: (entry[0], entry[1]))
    return tuple(i for _, i, _ in liked), tuple(e for _, _, e in liked)


def _rows_of(version: IndexVersion, ids: Collection[str]) -> set[int]:
    return {r for i in ids if (r := version.item_row.get(i)) is not None}


def _ordered(rows: Rows, scores: Floats, depth: int) -> tuple[Rows, Floats]:
    order = np.lexsort((rows, -scores))[:depth]
    return rows[order], scores[order]


def nearest(
    version: IndexVersion,
    query: Floats,
    *,
    depth: int,
    among: Subset | None = None,
    excluded: Collection[int] = (),
    ef: int | None = None,
) -> tuple[Rows, Floats]:
    """Items nearest to `query` by cosine: at most `depth`, none of `excluded`; within a
    subset (a category, a filter's items), found by a search kept to its items (indexing/
    subsets.py). `ef`: the HNSW beam, if not the index's own."""
    excluded = set(excluded)
    k = min(depth + len(excluded), version.item_index.ntotal)
    if among is not None:
        scores, rows = among.nearest(version.item_index, query, k, ef)
    else:
        found_scores, found = ann.search(version.item_index, query[None, :], k, ef=ef)
        keep = found[0] >= 0
        rows, scores = found[0][keep], found_scores[0][keep]
    if excluded:
        keep = np.fromiter((r not in excluded for r in rows), dtype=bool, count=len(rows))
        rows, scores = rows[keep], scores[keep]
    return _ordered(rows.astype(np.int64), scores.astype(np.float32), depth)


def excluded_rows(
    version: IndexVersion, profile: Profile, deleted: Collection[int], exclude_seen: bool
) -> set[int]:
    """Rows never to recommend to this user: deleted, disliked or hidden, and, unless asked
    otherwise, everything they have already interacted with."""
    rows = set(deleted) | _rows_of(version, profile.negative)
    if exclude_seen:
        rows |= _rows_of(version, profile.seen)
    return rows


def popular(
    version: IndexVersion, *, depth: int, among: Subset | None, excluded: Collection[int]
) -> Ranked:
    """Items by weighted engagement at build time: the cold-start answer. Read off lists
    sorted once (overall, or within a subset), as far as `depth` kept items; items no one
    engaged with have no place in it (the API fills a short list from live popularity)."""
    ordered = version.engaged_rows if among is None else among.engaged(version.popularity)
    excluded = set(excluded)
    best = (int(r) for r in ordered if r not in excluded)
    rows = np.fromiter(itertools.islice(best, depth), dtype=np.int64)
    return Ranked(rows, version.popularity[rows], "popular")


def recommend(
    version: IndexVersion,
    profile: Profile,
    settings: RankingSettings,
    *,
    depth: int,
    cold_start_min: int,
    among: Subset | None = None,
    exclude_seen: bool = True,
    deleted: Collection[int] = (),
    trending: hybrid.Trend | None = None,
    strategy: str = "hybrid",
) -> Ranked:
    """One user's ranked list: the hybrid blend (indexing/hybrid.py), or popular items while
    they have fewer than `cold_start_min` interactions and neither taste nor positive items,
    or always with `strategy="popular"` (an experiment's variant, the evaluation's Pop).

    `trending` is the served trending list, as a score per item row; build-time popularity
    stands in when there is none.
    """
    excluded = excluded_rows(version, profile, deleted, exclude_seen)
    liked, _ = positives_in(version, profile)
    cold = profile.count < cold_start_min or not (profile.has_taste or len(liked))
    if strategy == "popular" or cold:
        return popular(version, depth=depth, among=among, excluded=excluded)
    blended = blend_for(version, profile, settings, depth, among, excluded, trending)
    rows, scores = hybrid.ranked(version, settings, blended, depth)
    return Ranked(rows, scores, "hybrid")


def blend_for(
    version: IndexVersion,
    profile: Profile,
    settings: RankingSettings,
    depth: int,
    among: Subset | None,
    excluded: Collection[int],
    trending: hybrid.Trend | None,
    only: Rows | None = None,
) -> hybrid.Blend:
    liked, strength = positives_in(version, profile)
    if trending is None:  # no trending list served: build-time popularity stands in
        popularity = version.popularity
        trending = hybrid.Trend(
            popularity, version.engaged_rows, lambda subset: subset.engaged(popularity)
        )
    return hybrid.blend(
        version,
        settings,
        taste=profile.vector,
        liked=liked,
        evidence=strength,
        rejected=np.array(sorted(_rows_of(version, profile.negative)), dtype=np.int64),
        trending=trending,
        depth=depth,
        among=among,
        excluded=excluded,
        only=only,
    )


def positives_in(version: IndexVersion, profile: Profile) -> tuple[Rows, Floats]:
    """Rows of the user's positive items that the version holds, newest first, with the
    evidence of each."""
    strength = profile.evidence
    if len(strength) != len(profile.liked):  # a profile stored before evidence was kept
        strength = (1.0,) * len(profile.liked)
    pairs = [
        (r, e)
        for i, e in zip(profile.liked, strength, strict=True)
        if (r := version.item_row.get(i)) is not None
    ]
    return (
        np.array([r for r, _ in pairs], dtype=np.int64),
        np.array([e for _, e in pairs], dtype=np.float32),
    )


def session_profile(
    version: IndexVersion,
    item_ids: Sequence[str],
    types: Sequence[str],
    interactions: InteractionSettings,
) -> Profile:
    """The profile of an anonymous session that touched `item_ids` (newest last; those the
    version knows) with these interaction types, as a user's is made from their history:
    each item's net weight by type, the order standing for time, no decay (a session is
    minutes long). What POST /recommendations ranks, and what the offline session
    evaluation ranks (indexing/evaluate.py)."""
    if not item_ids:
        return Profile()
    weights = type_weights(list(types), [None] * len(types), interactions)
    net: dict[str, float] = defaultdict(float)
    newest: dict[str, float] = {}
    for n, (item_id, weight) in enumerate(zip(item_ids, weights.tolist(), strict=True)):
        net[item_id] += weight
        newest[item_id] = float(n)
    ids = list(net)
    liked, strength = newest_first(
        ids,
        np.fromiter(net.values(), dtype=np.float32, count=len(ids)),
        np.fromiter((newest[i] for i in ids), dtype=np.float64, count=len(ids)),
        0.0,
    )
    rows = rows_in_order(version, ids)
    vector = normalise(
        (np.array([net[i] for i in ids], dtype=np.float32) @ version.item_vectors[rows])[None, :]
    )[0]
    return Profile(
        vector=vector,
        seen=frozenset(ids),
        negative=frozenset(i for i, w in net.items() if w < 0),
        count=len(item_ids),
        liked=liked,
        evidence=strength,
    )


def rows_in_order(version: IndexVersion, ids: Sequence[str]) -> Rows:
    return np.array([r for i in ids if (r := version.item_row.get(i)) is not None], dtype=np.int64)


def similar_items(
    version: IndexVersion,
    query: Floats,
    *,
    limit: int,
    among: Subset | None,
    excluded: Collection[int],
    text: bool = False,
) -> Ranked:
    """Items nearest to an item's vector, searched with the version's beam for similar
    items, as its build found each item's nearest; or, for a `text` query, with the index's
    own beam."""
    ef = None if text else version.similar_ef
    rows, scores = nearest(version, query, depth=limit, among=among, excluded=excluded, ef=ef)
    return Ranked(rows, scores, "similar")


def similar_users(
    version: IndexVersion,
    query: Floats,
    *,
    limit: int,
    min_similarity: float | None,
    exclude: Collection[int] = (),
) -> tuple[Rows, Floats]:
    """The users nearest `query`, leaving out the rows in `exclude` (the user asking,
    users erased since the build)."""
    k = min(limit + len(exclude), version.user_index.ntotal)
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores, rows = ann.search(version.user_index, query[None, :], k)
    keep = rows[0] >= 0
    if exclude:
        keep &= ~np.isin(rows[0], np.fromiter(exclude, np.int64, len(exclude)))
    if min_similarity is not None:
        keep &= scores[0] >= min_similarity
    ranked_rows, ranked_scores = _ordered(rows[0][keep], scores[0][keep], limit)
    return ranked_rows, ranked_scores


# Users a build measures its sources' typical spreads and supports on.
TYPICAL_USERS = 200


def typical(version: IndexVersion, settings: RankingSettings, depth: int) -> dict[str, Any]:
    """{"spread": each source's median std of scores over a user's candidates, "support":
    each source's median support (`hybrid.supports`)}, among up to TYPICAL_USERS of the
    version's users spread over them (those the source scored): what indexing/hybrid.py
    weighs a user's against. Independent of the blend's weights: the candidates are every
    source's best."""
    picked = np.unique(np.linspace(0, len(version.user_ids) - 1, TYPICAL_USERS).astype(np.int64))
    spreads: dict[str, list[float]] = {source: [] for source in hybrid.SOURCES}
    supports: dict[str, list[float]] = {source: [] for source in hybrid.FROM_OTHERS}
    for user in picked.tolist() if len(version.user_ids) else []:
        profile = profile_of(version, version.user_ids[user])
        excluded = excluded_rows(version, profile, (), True)
        blended = blend_for(version, profile, settings, depth, None, excluded, None)
        for source in sources.REGISTRY:
            if not source.spread_weighed:  # weighed by support alone (indexing/hybrid.py)
                continue
            values = blended.raw[source.name]
            spread = float(source.shaped(values).std()) if len(values) else 0.0
            if spread > 1e-9:
                spreads[source.name].append(spread)
        liked, strength = positives_in(version, profile)
        for name, value in hybrid.supports(version, settings, liked, strength).items():
            supports[name].append(value)
    return {
        "spread": {source: float(np.median(v)) for source, v in spreads.items() if v},
        "support": {source: float(np.median(v)) for source, v in supports.items() if v},
    }
