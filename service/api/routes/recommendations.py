"""What client apps ask for: personal lists, similar items and users, trending, search."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, Field

from common.errors import DependencyError, NotFound
from common.models import (
    Addressable,
    Explanation,
    Recommendations,
    Scored,
    SearchIn,
    SearchResults,
    SimilarItems,
    SimilarUser,
    SimilarUsers,
    Text,
    TrendingList,
)
from common.text import item_labels, item_text
from embeddings.encoder import place
from experiments.design import DEFAULT, Params
from indexing import explanations, hybrid, ranking
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats
from indexing.ranking import Profile, Ranked
from service import fill, lists, profiles
from service.api.deps import Guarded, ResourcesDep, require
from service.api.routes import API, ERRORS
from service.experiments import State
from storage import catalog

log = logging.getLogger(__name__)
router = APIRouter(
    route_class=Guarded,
    prefix=API,
    tags=["recommendations"],
    dependencies=[require("read")],
    responses=ERRORS,
)

Id = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]
Category = Annotated[str | None, Query(min_length=1, max_length=128), Text]
Limit = Annotated[int, Query(ge=1, le=200)]


@dataclass(frozen=True)
class Served:
    """The variant a request is answered by, and whether its items count as impressions."""

    name: str
    params: Params
    counted: bool


class ListQuery(BaseModel):
    """The query of a personal list, validated in one call (a parameter each costs a cheap
    answer a few percent)."""

    limit: Annotated[int, Field(ge=1, le=200)] = 10
    offset: Annotated[int, Field(ge=0, le=10_000)] = 0
    category: Annotated[str | None, Field(min_length=1, max_length=128), Text] = None
    exclude_seen: bool = True
    experiment_id: Annotated[str | None, Field(max_length=128), Text] = None
    explain: bool = False


@router.get("/recommendations/{user_id}")
async def recommend(
    user_id: Id,
    res: ResourcesDep,
    query: Annotated[ListQuery, Query()],
    cache_control: Annotated[str | None, Header(max_length=256)] = None,
) -> Recommendations:
    """A user's list; unknown and new users get the popular items.

    Lists ranked live are kept for a minute, or until the user interacts;
    `Cache-Control: no-cache` skips that cache (and keeps the new list). Under a running
    experiment the list is the user's variant's, and its items count as that variant's
    impressions."""
    limit, offset, category = query.limit, query.offset, query.category
    exclude_seen, explain = query.exclude_seen, query.explain
    experiment_id = query.experiment_id or None  # `?experiment_id=` names none
    state, arm, version = await _experiment(res, experiment_id, user_id)
    params = arm.params if arm else DEFAULT
    # Answers outside any variant share the default list's entry.
    tested = experiment_id if arm else None
    ranked_as = arm.name if arm else None
    key = (user_id, version.version if version else 0, category, exclude_seen, tested, ranked_as)
    fresh = cache_control is not None and "no-cache" in cache_control.lower()
    found = None if fresh else res.serving.answers.get(key)
    hit = found is not None
    # A list ranked ahead may answer. Within an experiment every arm is ranked live, so that
    # arms differ only by their params, not by one being a list ranked ahead.
    ahead = found is None and category is None and exclude_seen and arm is None
    stored = res.serving.stored
    if ahead and version and stored.as_built(user_id, version.version, version.data_as_of):
        # Idle since the build: the build's list answers without reading a profile at all.
        found, ahead = _kept_built(res, version, user_id, offset + limit), False
    read = profiles.Read(Profile())
    was_read = found is None or explain
    if was_read:
        read = await profiles.read(res.redis, version, user_id, stored)
    profile = read.profile
    if ahead:
        found = _kept(res, version, user_id, read, offset + limit)
    if found is None:
        found = await _ranked_ids(res, version, profile, category, exclude_seen, params)
        res.serving.answers.put(key, found)
    ranked, strategy = found
    head = _live(ranked, res.serving.deleted, offset + limit)
    filled_ids: set[str] = set()
    if len(head) < offset + limit:
        # Short once deleted items are gone: filled from live popularity (service/fill.py).
        if not was_read:
            profile = await _profile(res, version, user_id)
        seen = profile.seen if exclude_seen else frozenset()
        popular = res.trending.popular(category)
        strategy = strategy if head else "popular"
        ranked_count = len(head)
        head = fill.filled(
            head, offset + limit, popular, res.serving.deleted, profile.negative, seen
        )
        filled_ids = {i for i, _ in head[ranked_count:]}
    page = head[offset : offset + limit]
    items = [_scored(i, s) for i, s in page]
    if explain:
        shown = [i.item_id for i in items if i.item_id not in filled_ids]
        said = await _reasons(res, version, profile, shown, strategy, params)
        for item in items:
            item.reasons = said.get(item.item_id, ["popular right now"])
    if arm is not None and experiment_id is not None and arm.counted:
        shown = [i.item_id for i in items]
        number = version.version if version else 0
        res.experiments.record(experiment_id, arm.name, user_id, shown, number)
    return Recommendations(
        user_id=user_id,
        items=items,
        index_version=version.version if version else None,
        strategy=strategy,
        variant=arm.name if arm and arm.counted else None,
        experiment_state=state,
        cached=hit,
    )


async def _experiment(
    res: ResourcesDep, experiment_id: str | None, user_id: str
) -> tuple[State | None, Served | None, IndexVersion | None]:
    """The experiment's state, the variant whose ranking the user gets, and the version
    that answers.

    An unknown or stopped experiment gets the default answer and records nothing. So does a
    variant whose pinned version cannot be loaded: the user is still answered. A user of a
    variant the guardrail stopped gets control's ranking, in no variant (`counted` false)."""
    version = res.serving.current
    if experiment_id is None:
        return None, None, version
    state, found = res.experiments.find(experiment_id)
    if found is None:
        return state, None, version
    arm, counted = found.serves(user_id)
    pinned = arm.params.index_version
    if pinned is not None:
        try:
            version = await res.serving.version(pinned)
        except Exception as exc:  # whatever stops that version, the user is still answered
            log.warning(
                "%s/%s pins version %d, which cannot be served: %s",
                experiment_id,
                arm.name,
                pinned,
                exc,
            )
            return state, None, res.serving.current
    return state, Served(arm.name, arm.params, counted), version


async def _profile(res: ResourcesDep, version: IndexVersion | None, user_id: str) -> Profile:
    return await profiles.current(res.redis, version, user_id, res.serving.stored)


async def _ranked_ids(
    res: ResourcesDep,
    version: IndexVersion | None,
    profile: Profile,
    category: str | None,
    exclude_seen: bool,
    params: Params = DEFAULT,
) -> tuple[list[tuple[str, float]], str]:
    """The user's list `ranking_depth` deep, ranked now."""
    depth = res.settings.index.ranking_depth
    if version is None:
        # No index yet: popularity straight from recent interactions.
        hot = await res.trending.top("hot", res.trending.hours, category)
        excluded = (
            res.serving.deleted | profile.negative | (profile.seen if exclude_seen else frozenset())
        )
        return [(i, s) for i, s in hot if i not in excluded][:depth], "popular"
    deleted = res.serving.deleted_rows(version)
    trending = res.trending.hot_scores(version)
    return await res.rank(
        lambda: lists.rank(
            version,
            profile,
            res.settings,
            deleted=deleted,
            trending=trending,
            params=params,
            category=category,
            exclude_seen=exclude_seen,
        )
    )


def _kept(
    res: ResourcesDep,
    version: IndexVersion | None,
    user_id: str,
    read: profiles.Read,
    count: int,
) -> tuple[list[tuple[str, float]], str] | None:
    """The first `count` live items of the user's list as it was ranked ahead, and its
    strategy: by the build (indexing/precompute.py) where the user has not acted since, or
    else from their stored profile (service/lists.py). None where neither is the user's now,
    or where the list holds too few live items and was cut at its depth (a live ranking has
    more). Only the head that is asked for is read."""
    if version is None:
        return None
    if not read.profile.built:
        digest = res.serving.list_digest(version)
        ahead = lists.decode(read.ranked, version.version, read.stamp, digest)
        if ahead is None:
            return None
        pairs = _live(ahead.pairs, res.serving.deleted, count)
        cut = len(ahead.pairs) >= ahead.depth
        return (pairs, ahead.strategy) if len(pairs) == count or not cut else None
    return _kept_built(res, version, user_id, count)


def _kept_built(
    res: ResourcesDep, version: IndexVersion | None, user_id: str, count: int
) -> tuple[list[tuple[str, float]], str] | None:
    """`_kept` for a user whose profile is the version's own: the list the build ranked."""
    if version is None:
        return None
    built = res.serving.kept_lists(version)
    row = version.user_row.get(user_id)
    kept = built.get(row) if built is not None and row is not None else None
    if kept is None:
        return None
    assert built is not None
    rows, scores, strategy = kept
    deleted = res.serving.deleted_rows(version)
    head = count + len(deleted)  # enough rows to hold `count` live ones
    ids = version.item_ids
    pairs = [
        (ids[r], s)
        for r, s in zip(rows[:head].tolist(), scores[:head].tolist(), strict=True)
        if r not in deleted
    ][:count]
    return (pairs, strategy) if len(pairs) == count or len(rows) < built.depth else None


def _live(pairs: list[tuple[str, float]], deleted: set[str], count: int) -> list[tuple[str, float]]:
    """The first `count` pairs whose item is not deleted (a cached list may predate it)."""
    if not deleted:
        return pairs[:count]
    live = []
    for pair in pairs:
        if pair[0] not in deleted:
            live.append(pair)
            if len(live) == count:
                break
    return live


def _pairs(version: IndexVersion, ranked: Ranked) -> list[tuple[str, float]]:
    return [
        (version.item_ids[r], float(s)) for r, s in zip(ranked.rows, ranked.scores, strict=True)
    ]


async def _blend(
    res: ResourcesDep,
    version: IndexVersion,
    profile: Profile,
    extra: list[int],
    params: Params = DEFAULT,
) -> hybrid.Blend:
    """The blend behind the user's list (by default, or under a variant's `params`), with
    `extra` rows scored alongside."""
    settings = res.settings
    served = params.apply(version.ranking(settings.ranking))
    trend = res.trending.hot_scores(version)
    excluded = ranking.excluded_rows(version, profile, res.serving.deleted_rows(version), True)

    def scored() -> hybrid.Blend:
        blended = ranking.blend_for(
            version, profile, served, settings.index.ranking_depth, None, excluded, trend
        )
        known = set(blended.rows.tolist())
        missing = [r for r in extra if r not in known]
        if missing:
            rows = np.concatenate([blended.rows, np.array(missing, dtype=np.int64)])
            blended = ranking.blend_for(version, profile, served, 0, None, (), trend, only=rows)
        return blended

    return await res.rank(scored)


async def _reasons(
    res: ResourcesDep,
    version: IndexVersion | None,
    profile: Profile,
    item_ids: list[str],
    strategy: str,
    params: Params = DEFAULT,
) -> dict[str, list[str]]:
    if strategy == "popular" or version is None:
        return {}
    rows = [version.item_row[i] for i in item_ids if i in version.item_row]
    blended = await _blend(res, version, profile, rows, params)
    position = {int(r): n for n, r in enumerate(blended.rows)}
    liked = ranking.rows_in_order(version, profile.liked)
    recent = liked[: res.settings.ranking.recent_items]
    return {
        version.item_ids[r]: explanations.reasons(version, blended, position[r], liked, recent)
        for r in rows
    }


@router.get("/recommendations/{user_id}/explain/{item_id}")
async def explain(user_id: Id, item_id: Id, res: ResourcesDep) -> Explanation:
    """Why an item ranks where it does for a user: each source's score, weight and share."""
    version = res.serving.current
    if version is None or item_id not in version.item_row:
        raise NotFound(f"item {item_id!r} is not in the served index")
    profile = await _profile(res, version, user_id)
    row = version.item_row[item_id]
    # The rank in the list the user gets by default, where seen items are left out.
    pairs, strategy = await _ranked_ids(res, version, profile, None, True)
    rank = next((n for n, (i, _) in enumerate(pairs) if i == item_id), None)
    if strategy == "popular":
        top = float(version.popularity.max()) or 1.0
        popularity = float(version.popularity[row]) / top
        return Explanation(
            user_id=user_id,
            item_id=item_id,
            score=round(popularity, 6),
            rank=rank,
            components={"popularity": popularity},
            reasons=["popular right now"],
            index_version=version.version,
        )
    blended = await _blend(res, version, profile, [row])
    at = int(np.flatnonzero(blended.rows == row)[0])
    liked = ranking.rows_in_order(version, profile.liked)
    components: dict[str, float | None] = {}
    for source in hybrid.SOURCES:
        components[source] = round(float(blended.raw[source][at]), 6)
        components[f"{source}_scaled"] = round(float(blended.scaled[source][at]), 6)
        components[f"{source}_trust"] = round(blended.trust[source], 6)
        components[f"{source}_weight"] = round(blended.weights[source], 6)
    components["negative_push"] = round(float(blended.push[at]), 6)
    components["negative_weight"] = version.ranking(res.settings.ranking).negative_weight
    return Explanation(
        user_id=user_id,
        item_id=item_id,
        score=round(float(blended.total[at]), 6),
        rank=rank,
        components=components,
        reasons=explanations.reasons(
            version, blended, at, liked, liked[: res.settings.ranking.recent_items]
        ),
        index_version=version.version,
    )


@router.get("/items/{item_id}/similar")
async def similar_items(
    item_id: Id, res: ResourcesDep, limit: Limit = 10, category: Category = None
) -> SimilarItems:
    """Items nearest in meaning; an item newer than the index is embedded on the spot."""
    version = res.serving.current
    if item_id in res.serving.deleted:
        raise NotFound(f"item {item_id!r} does not exist")
    if version is None:  # no index yet: the item's similar items are live popular ones
        await catalog.get_item(res.pool, item_id)
        popular = res.trending.popular(category)
        found = fill.filled([], limit, popular, res.serving.deleted, (item_id,))
        return SimilarItems(
            item_id=item_id, items=[_scored(i, s) for i, s in found], index_version=None
        )
    row = version.item_row.get(item_id)
    if row is not None and category is None:
        kept = _kept_nearest(version, row, res.serving.deleted_rows(version), limit)
        if kept is not None:
            return SimilarItems(
                item_id=item_id,
                items=[_scored(i, s) for i, s in kept],
                index_version=version.version,
            )
    if row is not None:
        query = version.item_vectors[row]
    else:
        item = await catalog.get_item(res.pool, item_id)
        text = item_text(item.title, item.description, item.category, item.tags)
        query = await _encode(res, version, text, item_labels(item.category, item.tags))
    excluded = set(res.serving.deleted_rows(version)) | ({row} if row is not None else set())
    ranked = await res.rank(
        lambda: ranking.similar_items(
            version, query, limit=limit, category=category, excluded=excluded
        )
    )
    found = _pairs(version, ranked)
    if len(found) < limit:  # the version's items are mostly gone (service/fill.py)
        popular = res.trending.popular(category)
        found = fill.filled(found, limit, popular, res.serving.deleted, (item_id,))
    return SimilarItems(
        item_id=item_id,
        items=[_scored(i, s) for i, s in found],
        index_version=version.version,
    )


def _scored(item_id: str, score: float) -> Scored:
    """An item of a list the service ranked itself: its id and score need no validation
    (validating ten of them was 5% of a list lookup's samples)."""
    return Scored.model_construct(item_id=item_id, score=round(float(score), 6))


def _kept_nearest(
    version: IndexVersion, row: int, deleted: frozenset[int], limit: int
) -> list[tuple[str, float]] | None:
    """The first `limit` live items of the item's nearest items as the build found them
    (indexing/precompute.py); None where the build found none, or too few are left of a
    list cut at its depth (a live search finds more)."""
    kept = version.nearest.get(row) if version.nearest is not None else None
    if kept is None:
        return None
    assert version.nearest is not None
    rows, scores = kept
    ids = version.item_ids
    pairs = []
    for r, s in zip(rows.tolist(), scores.tolist(), strict=True):
        if r not in deleted:
            pairs.append((ids[r], s))
            if len(pairs) == limit:
                return pairs
    return pairs if len(rows) < version.nearest.depth else None


@router.get("/users/{user_id}/similar")
async def similar_users(
    user_id: Id,
    res: ResourcesDep,
    limit: Limit = 10,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
) -> SimilarUsers:
    """Users whose taste vectors are nearest to this one's."""
    version = res.serving.current
    if version is None:
        return SimilarUsers(user_id=user_id, users=[], index_version=None)
    profile = await _profile(res, version, user_id)
    if not profile.has_taste:
        return SimilarUsers(user_id=user_id, users=[], index_version=version.version)
    vector = profile.vector
    assert vector is not None
    rows, scores = await res.rank(
        lambda: ranking.similar_users(
            version,
            vector,
            limit=limit,
            min_similarity=min_similarity,
            exclude=version.user_row.get(user_id),
        )
    )
    return SimilarUsers(
        user_id=user_id,
        users=[
            SimilarUser(user_id=version.user_ids[r], similarity=round(float(s), 6))
            for r, s in zip(rows, scores, strict=True)
        ],
        index_version=version.version,
    )


@router.get("/trending")
async def trending_items(
    res: ResourcesDep,
    variant: Literal["hot", "rising", "fresh", "viral"] = "hot",
    category: Category = None,
    limit: Limit = 10,
    window_hours: Annotated[int | None, Query(ge=1, le=24 * 365)] = None,
) -> TrendingList:
    """Items trending now; see indexing/trending.py for each variant's formula."""
    hours = window_hours or res.settings.index.trending_window_hours
    found = await res.trending.top(variant, hours, category)
    live = [(i, s) for i, s in found if i not in res.serving.deleted][:limit]
    if variant == "hot" and len(live) < limit:
        # Little or nothing engaged within the window: what is popular is what was, over
        # all of history (service/fill.py). The other variants measure change in the
        # window, and say only what it holds.
        live = fill.filled(live, limit, res.trending.popular(category), res.serving.deleted)
    return TrendingList(
        variant=variant,
        category=category,
        window_hours=hours,
        items=[_scored(i, s) for i, s in live],
    )


@router.post("/search")
async def search(body: SearchIn, res: ResourcesDep) -> SearchResults:
    """Items whose text is nearest in meaning to the query."""
    version = res.serving.current
    if version is None:
        return SearchResults(items=[], index_version=None)
    query = await _encode(res, version, body.text)
    deleted = res.serving.deleted_rows(version)
    ranked = await res.rank(
        lambda: ranking.similar_items(
            version, query, limit=body.limit, category=body.category, excluded=deleted, text=True
        )
    )
    return SearchResults(
        items=[_scored(i, s) for i, s in _pairs(version, ranked)],
        index_version=version.version,
    )


async def _encode(
    res: ResourcesDep, version: IndexVersion, text: str, labels: str | None = None
) -> Floats:
    """One text as a query vector, by the encoder the served version was built with: an
    item's (with its `labels`) as the workers embed items, or else a searcher's words."""
    built_with = version.manifest["encoder"]["name"]
    if built_with != res.settings.embedding.model:
        raise DependencyError(
            f"the served index was built with {built_with!r}, this process encodes with "
            f"{res.settings.embedding.model!r}: set EMBEDDING_MODEL alike everywhere"
        )
    vectors = await (res.encode([text]) if labels is None else res.embed_item(text, labels))
    query: Floats = place(vectors, version.embedding_mean)[0]
    return query
