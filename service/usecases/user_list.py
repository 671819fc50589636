"""A user's list: what GET /recommendations/{user_id} answers.

The version and ranking come from the user's experiment variant, if any, and what the list
keeps to from the request's category, filter and scenario (service/usecases/rules.py; a
variant may name the scenario); the list from the chain of list sources
(service/usecases/list_sources.py); deleted items are removed, a list left short is filled
from live popularity within the rules (service/fill.py), the scenario's boosters reorder it,
and the page is cut. Under a running experiment the shown items count as the variant's
impressions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from common.errors import UnknownScenario
from common.models import Recommendations, Scored
from experiments.design import DEFAULT, Params
from indexing.artifacts import IndexVersion
from service.application import Application
from service.experiments import State
from service.scenarios import Placement
from service.usecases import explain, item_fields, rules
from service.usecases.list_sources import Ask, UserProfile, find_list, live

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListRequest:
    """A personal list asked for: the page `offset`..`offset + limit` of the user's list."""

    user_id: str
    limit: int = 10
    offset: int = 0
    category: str | None = None
    filter: str | None = None
    scenario: str | None = None
    # Item fields to add to each item (service/usecases/item_fields.py).
    fields: str | Sequence[str] | None = None
    exclude_seen: bool | None = None  # None: the scenario's, or True
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
    kept_to = rules.rules_for(app, request.category, request.filter, request.scenario)
    names = item_fields.parse(request.fields)
    state, variant, version = await _variant(app, request.experiment_id, user_id)
    if variant is not None and variant.params.scenario is not None:
        kept_to = _variant_scenario(app, request, variant.params.scenario, kept_to)
    placement = kept_to.scenario
    params = placed(variant.params if variant else DEFAULT, placement)
    exclude_seen = _exclude_seen(request, placement)
    applied = await rules.resolve(app, kept_to, version)
    depth = rules.boosted_depth(app, kept_to, count)
    ask = Ask(
        user_id=user_id,
        version=version,
        count=depth,
        rules=kept_to,
        among=applied.subset,
        exclude_seen=exclude_seen,
        params=params,
        experiment_id=request.experiment_id if variant else None,
        variant=variant.name if variant else None,
        fresh=request.fresh,
        # A list kept to rules is cached only while no item has changed since.
        generation=app.catalog_fields.generation if kept_to.reads_fields else 0,
    )
    user = UserProfile(app, version, user_id)
    found = await find_list(app, ask, user)
    strategy = found.strategy
    deleted = app.serving.deleted
    head = live(found.pairs, deleted, depth)
    filled_ids: set[str] = set()
    if len(head) < depth:
        # Short once deleted items are gone: filled from live popularity (service/fill.py),
        # as deep as boosters reorder, so that every page is cut from the same list.
        profile = await user.profile()
        seen = profile.seen if exclude_seen else frozenset()
        strategy = strategy if head else "popular"
        ranked = {i for i, _ in head}
        head = await rules.filled(app, applied, head, depth, deleted, profile.negative, seen)
        filled_ids = {i for i, _ in head} - ranked
    head, boosts = await rules.boosted(app, applied, head)
    page = head[request.offset : count]
    items = [scored(i, s) for i, s in page]
    if request.explain:
        shown = [i.item_id for i in items if i.item_id not in filled_ids]
        profile = await user.profile()
        said = await explain.reasons(app, version, profile, shown, strategy, params)
        for item in items:
            item.reasons = said.get(item.item_id, ["popular right now"])
            item.reasons += rules.boost_reasons(boosts.get(item.item_id, []))
    await item_fields.add(app, items, names)
    answer = Recommendations(
        user_id=user_id,
        items=items,
        index_version=version.version if version else None,
        strategy=strategy,
        variant=variant.name if variant and variant.counted else None,
        experiment_state=state,
        cached=found.cached,
    )
    if variant is not None and request.experiment_id is not None and variant.counted:
        number = version.version if version else 0
        shown = [i.item_id for i in items]
        app.experiments.record(
            request.experiment_id, variant.name, user_id, shown, number, answer.recommendation_id
        )
    return answer


def _exclude_seen(request: ListRequest, placement: Placement | None) -> bool:
    """The request's own, else the scenario's, else true."""
    if request.exclude_seen is not None:
        return request.exclude_seen
    if placement is not None and placement.exclude_seen is not None:
        return placement.exclude_seen
    return True


def placed(params: Params, placement: Placement | None) -> Params:
    """A variant's (or the default) params under a scenario: its diversity settings, unless
    the variant sets them too, and its strategy where it names one other than hybrid."""
    if placement is None:
        return params
    strategy = placement.strategy if placement.strategy != "hybrid" else params.strategy
    ranking = {**placement.ranking, **params.ranking}
    return replace(params, ranking=ranking, strategy=strategy)


def _variant_scenario(
    app: Application, request: ListRequest, scenario_id: str, asked: rules.Rules
) -> rules.Rules:
    """The rules of the variant's scenario, in place of the request's; where that scenario
    is gone, the request's (the user is still answered)."""
    try:
        return rules.rules_for(app, request.category, request.filter, scenario_id)
    except UnknownScenario:
        log.warning("an experiment variant names scenario %r, which does not exist", scenario_id)
        return asked


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
