"""Users and the interactions that shape their recommendations."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from common.errors import CacheUnavailable, InvalidInput, UnknownItems
from common.models import (
    FUTURE_TOLERANCE,
    Accepted,
    Addressable,
    InteractionBatch,
    InteractionIn,
    Text,
    User,
    UserFields,
)
from service.api.body import body_schema, json_body
from service.api.deps import Guarded, PoolDep, ResourcesDep, require
from service.api.routes import API, ERRORS
from storage import activity

log = logging.getLogger(__name__)

router = APIRouter(
    route_class=Guarded,
    prefix=API,
    tags=["users and interactions"],
    dependencies=[require("write")],
    responses=ERRORS,
)

UserId = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]


class UnknownItemsInBatch(InvalidInput):
    code = "unknown_item"


@router.put("/users/{user_id}")
async def put_user(user_id: UserId, fields: UserFields, pool: PoolDep) -> User:
    """Create a user or replace its attributes."""
    return await activity.put_user(pool, user_id, fields.attributes)


@router.get("/users/{user_id}")
async def get_user(user_id: UserId, pool: PoolDep) -> User:
    """A user with how many interactions it has and when it last acted."""
    return await activity.get_user(pool, user_id)


@router.post("/interactions", status_code=202)
async def post_interaction(interaction: InteractionIn, res: ResourcesDep) -> Accepted:
    """Record one interaction; an event_id seen before counts once. The user's next answer
    reflects it."""
    _check(res.settings.interactions.types, [interaction])
    accepted, duplicates = await activity.record_interactions(res.pool, [interaction])
    if accepted:
        try:
            await res.profiles.now([interaction.user_id])
        except CacheUnavailable:
            # Stored and queued in one transaction: the refresher retries once Redis is back.
            log.warning(
                "Redis is unavailable: %r's profile refresh stays queued", interaction.user_id
            )
            res.profiles.mark()
    return Accepted(accepted=accepted, duplicates=duplicates)


@router.post("/interactions/batch", status_code=202, openapi_extra=body_schema(InteractionBatch))
async def post_interactions(
    batch: Annotated[InteractionBatch, json_body(InteractionBatch)], res: ResourcesDep
) -> Accepted:
    """Record up to 10,000 interactions: all or nothing, each bad row named. The users'
    profiles are refreshed just after the answer."""
    _check(res.settings.interactions.types, batch.interactions)
    try:
        accepted, duplicates = await activity.record_interactions(res.pool, batch.interactions)
    except UnknownItems as exc:
        raise UnknownItemsInBatch(exc.message, details=exc.details) from exc
    if accepted:
        res.profiles.mark()
    return Accepted(accepted=accepted, duplicates=duplicates)


def _check(types: frozenset[str], interactions: list[InteractionIn]) -> None:
    # Most batches are clean: find that out with set arithmetic before looking row by row.
    latest = max((r.timestamp for r in interactions if r.timestamp is not None), default=None)
    now = datetime.now(UTC)
    clean = (
        {r.type for r in interactions} <= types
        and (latest is None or latest <= now + FUTURE_TOLERANCE)
        and all(
            r.value is not None and 1 <= r.value <= 5 for r in interactions if r.type == "rating"
        )
    )
    if clean:
        return
    problems = [
        (n, problem)
        for n, row in enumerate(interactions)
        if (problem := row.problem(types, now)) is not None
    ]
    index, first = problems[0]
    if len(interactions) > 1:
        first = f"{len(problems)} interaction(s) are invalid; the first, at index {index}: {first}"
    details = [
        {"index": n, "field": f"interactions[{n}]", "message": problem}
        for n, problem in problems[:100]
    ]
    raise InvalidInput(first, details=details)
