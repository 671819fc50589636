"""A user's list: what GET /recommendations/{user_id} answers.

The version and ranking come from the user's experiment variant, if any; the list from the
chain of list sources (service/usecases/list_sources.py); deleted items are removed, a list
left short is filled from live popularity (service/fill.py), and the page is cut. Under a
running experiment the shown items count as the variant's impressions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from common.models import Recommendations, Scored
from experiments.design import DEFAULT, Params
from indexing.artifacts import IndexVersion
from service import fill
from service.application import Application
from service.experiments import State
from service.usecases import explain
from service.usecases.list_sources import Ask, UserProfile, find_list, live

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListRequest:
    """A personal list asked for: the page `offset`..`offset + limit` of the user's list."""

    user_id: str
    limit: int = 10
    offset: int = 0
    category: str | None = None
    exclude_seen: bool = True
    experiment_id: str | None = None
    explain: bool = False
    fresh: bool = False  # skip the answer cache, and keep the list ranked now


@dataclass(frozen=True)
class ServedVariant:
    """The variant a request is answered by, and whether its items count as impressions."""

    name: str
    params: Params
    counted: bool


async def user_list(app: Application, request: ListRequest) -> Recommendations:
    """A user's list; unknown and new users get the popular items."""
    user_id, count = request.user_id, request.offset + request.limit
    state, variant, version = await _variant(app, request.experiment_id, user_id)
    ask = Ask(
        user_id=user_id,
        version=version,
        count=count,
        category=request.category,
        exclude_seen=request.exclude_seen,
        params=variant.params if variant else DEFAULT,
        experiment_id=request.experiment_id if variant else None,
        variant=variant.name if variant else None,
        fresh=request.fresh,
    )
    user = UserProfile(app, version, user_id)
    found = await find_list(app, ask, user)
    strategy = found.strategy
    deleted = app.serving.deleted
    head = live(found.pairs, deleted, count)
    ranked_count = len(head)
    if ranked_count < count:
        # Short once deleted items are gone: filled from live popularity (service/fill.py).
        profile = await user.profile()
        seen = profile.seen if request.exclude_seen else frozenset()
        popular = app.trending.popular(request.category)
        strategy = strategy if head else "popular"
        head = fill.filled(head, count, popular, deleted, profile.negative, seen)
    page = head[request.offset : count]
    items = [scored(i, s) for i, s in page]
    if request.explain:
        filled_ids = {i for i, _ in head[ranked_count:]}
        shown = [i.item_id for i in items if i.item_id not in filled_ids]
        params = variant.params if variant else DEFAULT
        said = await explain.reasons(app, version, await user.profile(), shown, strategy, params)
        for item in items:
            item.reasons = said.get(item.item_id, ["popular right now"])
    if variant is not None and request.experiment_id is not None and variant.counted:
        number = version.version if version else 0
        shown = [i.item_id for i in items]
        app.experiments.record(request.experiment_id, variant.name, user_id, shown, number)
    return Recommendations(
        user_id=user_id,
        items=items,
        index_version=version.version if version else None,
        strategy=strategy,
        variant=variant.name if variant and variant.counted else None,
        experiment_state=state,
        cached=found.cached,
    )


async def _variant(
    app: Application, experiment_id: str | None, user_id: str
) -> tuple[State | None, ServedVariant | None, IndexVersion | None]:
    """The experiment's state, the variant whose ranking the user gets, and the version
    that answers.

    An unknown or stopped experiment gets the default answer and records nothing. So does a
    variant whose pinned version cannot be loaded: the user is still answered. A user of a
    variant the guardrail stopped gets control's ranking, in no variant (`counted` false)."""
    version = app.serving.current
    if experiment_id is None:
        return None, None, version
    state, design = app.experiments.find(experiment_id)
    if design is None:
        return state, None, version
    variant, counted = design.serves(user_id)
    pinned = variant.params.index_version
    if pinned is not None:
        try:
            version = await app.serving.version(pinned)
        except Exception as exc:  # whatever stops that version, the user is still answered
            log.warning(
                "%s/%s pins version %d, which cannot be served: %s",
                experiment_id,
                variant.name,
                pinned,
                exc,
            )
            return state, None, app.serving.current
    return state, ServedVariant(variant.name, variant.params, counted), version


def scored(item_id: str, score: float) -> Scored:
    """An item of a list the service ranked itself: its id and score need no validation
    (validating ten of them was 5% of a list lookup's samples)."""
    return Scored.model_construct(item_id=item_id, score=round(float(score), 6))
