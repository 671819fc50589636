"""Dead letters, for ops: list them, replay them once what refused them is fixed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from common.models import DeadLetters, Replayed, ReplayIn
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import events

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/events",
    tags=["events"],
    dependencies=[require("admin")],
    responses=ERRORS,
)


@router.get("/dead")
async def dead_letters(
    app: AppDep, limit: Annotated[int, Query(ge=1, le=1_000)] = 100
) -> DeadLetters:
    """The oldest dead letters: each message's raw text, the error, its topic and time."""
    return await events.dead_letters(app, limit)


@router.post("/dead/replay")
async def replay_dead(app: AppDep, body: ReplayIn | None = None) -> Replayed:
    """Publish the dead letters' originals to their topics again (after the cause is fixed),
    and drop the letters; counts by topic."""
    return await events.replay_dead(app, (body or ReplayIn()).limit)
