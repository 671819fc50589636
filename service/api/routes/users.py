"""Users and the interactions that shape their recommendations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from common.models import (
    Accepted,
    Addressable,
    InteractionBatch,
    InteractionIn,
    InteractionPage,
    Text,
    User,
    UserFields,
)
from service.api.body import body_schema, json_body
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import interactions

router = APIRouter(
    route_class=Guarded,
    prefix=API,
    tags=["users and interactions"],
    dependencies=[require("write")],
    responses=ERRORS,
)

UserId = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]


@router.put("/users/{user_id}")
async def put_user(user_id: UserId, fields: UserFields, app: AppDep) -> User:
    """Create a user or replace its attributes."""
    return await interactions.put_user(app, user_id, fields.attributes)


@router.get("/users/{user_id}")
async def get_user(user_id: UserId, app: AppDep) -> User:
    """A user with how many interactions it has and when it last acted."""
    return await interactions.get_user(app, user_id)


@router.delete("/users/{user_id}", status_code=204)
async def erase_user(user_id: UserId, app: AppDep) -> None:
    """Erase a user at once: interactions, profile, kept lists and experiment assignments.
    They leave similar-users answers and every version built afterwards; their id gets the
    cold-start answer; an interaction for it timestamped at or before now that arrives later
    (a redelivery) is dropped. Erasing an id that names no user still leaves the tombstone."""
    await interactions.erase(app, user_id)


@router.get("/users/{user_id}/interactions")
async def user_interactions(
    user_id: UserId,
    app: AppDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 50,
    cursor: Annotated[str | None, Query(max_length=512), Text] = None,
) -> InteractionPage:
    """A user's interactions, newest first; pass `next_cursor` back as `cursor` for the
    next page."""
    return await interactions.history(app, user_id, limit, cursor)


@router.post("/interactions", status_code=202)
async def post_interaction(interaction: InteractionIn, app: AppDep) -> Accepted:
    """Record one interaction; an event_id seen before counts once. The user's next answer
    reflects it."""
    return await interactions.record_one(app, interaction)


@router.post("/interactions/batch", status_code=202, openapi_extra=body_schema(InteractionBatch))
async def post_interactions(
    batch: Annotated[InteractionBatch, json_body(InteractionBatch)], app: AppDep
) -> Accepted:
    """Record up to 10,000 interactions: all or nothing, each bad row named. The users'
    profiles are refreshed just after the answer."""
    return await interactions.record_batch(app, batch.interactions)
