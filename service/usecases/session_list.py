"""A session's list: recommendations for a visitor who has not signed in, from the items
their session touched.

The session's profile is made on the spot as a user's is made from their history
(indexing/ranking.py, session_profile: the offline session evaluation ranks the same): each
item weighed by its interaction type, the newest last, its taste vector the weighted sum of
the items' vectors; then it is ranked by the same code as a
user's list (service/lists.py), with the items it touched left out. No user is created and
nothing is stored. Items the served version does not know are reported, not ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.errors import InvalidInput, TooManySessionItems
from common.models import MAX_SESSION_ITEMS, SessionIn, SessionRecommendations
from experiments.design import DEFAULT
from indexing.artifacts import IndexVersion
from indexing.profiles import Profile
from indexing.ranking import session_profile
from service.application import Application
from service.usecases import explain, item_fields, rules
from service.usecases.list_sources import Ask, rank_now
from service.usecases.user_list import placed, scored

Pairs = list[tuple[str, float]]
# What an item of a session counts as when its type is not given.
DEFAULT_TYPE = "view"


@dataclass(frozen=True)
class SessionItem:
    item_id: str
    type: str = DEFAULT_TYPE


@dataclass(frozen=True)
class SessionList:
    """The page of a session's list, the version that ranked it, and the items it named
    that the version does not know."""

    pairs: Pairs
    strategy: str
    index_version: int | None
    unknown_items: list[str]


async def session_list(
    app: Application,
    items: Sequence[SessionItem],
    limit: int = 10,
    offset: int = 0,
    category: str | None = None,
    filter_text: str | None = None,
    scenario: str | None = None,
) -> SessionList:
    """The page `offset`..`offset + limit` of the list for a session that touched `items`
    (newest last), within `category`, the filter and the scenario's rules where given."""
    kept_to = rules.rules_for(app, category, filter_text, scenario)
    version = app.serving.current
    known = [i for i in items if version is not None and i.item_id in version.item_row]
    unknown = sorted({i.item_id for i in items} - {i.item_id for i in known})
    profile = _profile(app, version, items)
    count = offset + limit
    depth = rules.boosted_depth(app, kept_to, count)
    applied = await rules.resolve(app, kept_to, version)
    params = placed(DEFAULT, kept_to.scenario)
    ask = Ask(
        user_id="", version=version, count=count, rules=kept_to, among=applied.subset, params=params
    )
    pairs, strategy = await rank_now(app, ask, profile)
    deleted = app.serving.deleted
    # All of it: boosters reorder the whole ranked list, not only the page.
    head = [(i, s) for i, s in pairs if i not in deleted]
    if len(head) < depth:
        touched = {i.item_id for i in items}
        strategy = strategy if head else "popular"
        head = await rules.filled(app, applied, head, depth, deleted, profile.negative, touched)
    head, _ = await rules.boosted(app, applied, head)
    return SessionList(
        pairs=head[offset:count],
        strategy="session" if strategy != "popular" else strategy,
        index_version=version.version if version else None,
        unknown_items=unknown,
    )


def _profile(
    app: Application, version: IndexVersion | None, items: Sequence[SessionItem]
) -> Profile:
    """The session's profile over the items `version` knows."""
    if version is None:
        return Profile()
    known = [i for i in items if i.item_id in version.item_row]
    return session_profile(
        version, [i.item_id for i in known], [i.type for i in known], app.settings.interactions
    )


async def recommend_session(app: Application, body: SessionIn) -> SessionRecommendations:
    """POST /recommendations: the session's list page, with reasons and item fields where
    asked. More than MAX_SESSION_ITEMS items, or an item type that is not configured (or
    `rating`, which needs a value), is refused, naming it."""
    if len(body.items) > MAX_SESSION_ITEMS:
        raise TooManySessionItems(
            f"a session names at most {MAX_SESSION_ITEMS} items, newest last; "
            f"this one names {len(body.items)}"
        )
    types = set(app.settings.interactions.interaction_weights)
    touched = [
        SessionItem(i) if isinstance(i, str) else SessionItem(i.item_id, i.type) for i in body.items
    ]
    for n, touch in enumerate(touched):
        if touch.type not in types:
            raise InvalidInput(
                f"items[{n}].type: {touch.type!r} is not one of {', '.join(sorted(types))}",
                details=[{"field": f"items[{n}].type", "message": "not a configured type"}],
            )
    names = item_fields.parse(body.fields)
    found = await session_list(
        app, touched, body.limit, body.offset, body.category, body.filter, body.scenario
    )
    items = [scored(i, s) for i, s in found.pairs]
    if body.explain:
        version = app.serving.current
        profile = _profile(app, version, touched)
        shown = [i.item_id for i in items]
        said = await explain.reasons(app, version, profile, shown, found.strategy)
        for item in items:
            item.reasons = said.get(item.item_id, ["popular right now"])
    await item_fields.add(app, items, names)
    return SessionRecommendations(
        items=items,
        index_version=found.index_version,
        strategy=found.strategy,
        unknown_items=found.unknown_items,
    )
