"""An item's similar items and a user's similar users.

Similar items of an item the version knows are usually a lookup of the nearest items its
build found (indexing/precompute.py); otherwise, and for an item newer than the version
(embedded on the spot), a search of the item index.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import NotFound
from common.models import SimilarItems, SimilarUser, SimilarUsers
from common.text import item_labels, item_text
from indexing import ranking
from indexing.artifacts import IndexVersion
from indexing.subsets import Subset
from service import profiles
from service.application import Application
from service.usecases import item_fields, rules
from service.usecases.search import query_vector
from service.usecases.user_list import scored
from storage import catalog

Pairs = list[tuple[str, float]]


async def similar_items(
    app: Application,
    item_id: str,
    limit: int = 10,
    category: str | None = None,
    filter_text: str | None = None,
    fields: str | Sequence[str] | None = None,
    scenario: str | None = None,
) -> SimilarItems:
    """The `limit` items nearest in meaning to the item, within `category`, the filter and
    the scenario's rules if given (its boosters reorder them), with the item `fields` asked
    for."""
    kept_to = rules.rules_for(app, category, filter_text, scenario)
    names = item_fields.parse(fields)
    version = app.serving.current
    if item_id in app.serving.deleted:
        raise NotFound(f"item {item_id!r} does not exist")
    applied = await rules.resolve(app, kept_to, version)
    depth = rules.boosted_depth(app, kept_to, limit)
    found = await _similar_items(app, item_id, depth, applied)
    found, _ = await rules.boosted(app, applied, found)
    answer = SimilarItems(
        item_id=item_id,
        items=[scored(i, s) for i, s in found[:limit]],
        index_version=version.version if version else None,
    )
    await item_fields.add(app, answer.items, names)
    return answer


async def _similar_items(
    app: Application, item_id: str, limit: int, applied: rules.Applied
) -> Pairs:
    version, deleted = applied.version, app.serving.deleted
    if version is None:  # no index yet: the item's similar items are live popular ones
        await catalog.get_item(app.pool, item_id)
        return await rules.filled(app, applied, [], limit, deleted, (item_id,))
    row = version.item_row.get(item_id)
    if row is not None:
        kept = _nearest_kept(version, row, app.serving.deleted_rows(version), limit, applied)
        if kept is not None:  # all the build found, or `limit` of them
            return kept
    found = await _nearest_now(app, version, item_id, row, limit, applied.subset)
    if len(found) < limit:  # the version's items are mostly gone (service/fill.py)
        found = await rules.filled(app, applied, found, limit, deleted, (item_id,))
    return found


def _nearest_kept(
    version: IndexVersion, row: int, deleted: frozenset[int], limit: int, applied: rules.Applied
) -> Pairs | None:
    """The first `limit` live items (within the rules) of the item's nearest items as the
    build found them; None where the build found none, or too few are left of a list cut
    at its depth (a live search finds more)."""
    kept = version.nearest.get(row) if version.nearest is not None else None
    if kept is None:
        return None
    assert version.nearest is not None
    rows, scores = kept
    ids = version.item_ids
    pairs = []
    for r, s in zip(rows.tolist(), scores.tolist(), strict=True):
        if r not in deleted and applied.admits(r):
            pairs.append((ids[r], s))
            if len(pairs) == limit:
                return pairs
    return pairs if len(rows) < version.nearest.depth else None


async def _nearest_now(
    app: Application,
    version: IndexVersion,
    item_id: str,
    row: int | None,
    limit: int,
    among: Subset | None,
) -> Pairs:
    """The item's nearest items searched now; an item the version does not know is read
    from the catalog and embedded as the workers embed items."""
    if row is not None:
        query = version.item_vectors[row]
    else:
        item = await catalog.get_item(app.pool, item_id)
        text = item_text(item.title, item.description, item.category, item.tags)
        query = await query_vector(app, version, text, item_labels(item.category, item.tags))
    excluded = set(app.serving.deleted_rows(version)) | ({row} if row is not None else set())
    ranked = await app.rank(
        lambda: ranking.similar_items(version, query, limit=limit, among=among, excluded=excluded)
    )
    ids = version.item_ids
    return [(ids[r], float(s)) for r, s in zip(ranked.rows, ranked.scores, strict=True)]


async def similar_users(
    app: Application, user_id: str, limit: int = 10, min_similarity: float | None = None
) -> SimilarUsers:
    """Users whose taste vectors are nearest to this one's."""
    version = app.serving.current
    if version is None:
        return SimilarUsers(user_id=user_id, users=[], index_version=None)
    profile = await profiles.current(app.redis, version, user_id, app.serving.profile_stamps)
    if not profile.has_taste:
        return SimilarUsers(user_id=user_id, users=[], index_version=version.version)
    vector = profile.vector
    assert vector is not None
    rows, scores = await app.rank(
        lambda: ranking.similar_users(
            version,
            vector,
            limit=limit,
            min_similarity=min_similarity,
            exclude=_left_out(app, version, user_id),
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


def _left_out(app: Application, version: IndexVersion, user_id: str) -> set[int]:
    """The rows a similar-users answer leaves out: the user's own, and erased users'."""
    erased = app.serving.erased.rows(version)
    own = version.user_row.get(user_id)
    return erased | {own} if own is not None else erased
