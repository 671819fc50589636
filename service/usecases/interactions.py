"""Users and the interactions that shape their recommendations.

An interaction is stored and its user queued for a profile refresh in one transaction
(storage/activity.py): an acknowledged write is never lost, and a refresh that cannot run
now (Redis down) runs once it can (service/profiles.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from common.errors import CacheUnavailable, InvalidInput, UnknownItems
from common.models import FUTURE_TOLERANCE, Accepted, InteractionIn, InteractionPage, User
from service.application import Application
from storage import activity, erasures
from storage import experiments as stored_experiments

log = logging.getLogger(__name__)


class UnknownItemsInBatch(InvalidInput):
    code = "unknown_item"


async def put_user(app: Application, user_id: str, attributes: dict[str, Any]) -> User:
    """Create a user or replace its attributes."""
    return await activity.put_user(app.pool, user_id, attributes)


async def get_user(app: Application, user_id: str) -> User:
    """A user with how many interactions it has and when it last acted."""
    return await activity.get_user(app.pool, user_id)


async def record_one(app: Application, interaction: InteractionIn) -> Accepted:
    """Record one interaction; an event_id seen before counts once. The user's profile is
    refreshed before the answer, so their next list reflects it."""
    check(app.settings.interactions.types, [interaction])
    accepted, duplicates = await activity.record_interactions(app.pool, [interaction])
    if accepted:
        try:
            await app.refresher.now([interaction.user_id])
        except CacheUnavailable:
            # Stored and queued in one transaction: the refresher retries once Redis is back.
            log.warning(
                "Redis is unavailable: %r's profile refresh stays queued", interaction.user_id
            )
            app.refresher.mark()
    return Accepted(accepted=accepted, duplicates=duplicates)


async def record_batch(app: Application, interactions: list[InteractionIn]) -> Accepted:
    """Record a batch: all or nothing, each bad row named. The users' profiles are
    refreshed just after."""
    check(app.settings.interactions.types, interactions)
    try:
        accepted, duplicates = await activity.record_interactions(app.pool, interactions)
    except UnknownItems as exc:
        raise UnknownItemsInBatch(exc.message, details=exc.details) from exc
    if accepted:
        app.refresher.mark()
    return Accepted(accepted=accepted, duplicates=duplicates)


def check(types: frozenset[str], interactions: list[InteractionIn]) -> None:
    """Refuse the whole batch where a row is invalid, naming each bad row."""
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


async def history(
    app: Application, user_id: str, limit: int, cursor: str | None
) -> InteractionPage:
    """A user's interactions, newest first, a page at a time."""
    found, next_cursor = await activity.user_interactions(app.pool, user_id, limit, cursor)
    return InteractionPage(interactions=found, next_cursor=next_cursor)


async def erase(app: Application, user_id: str) -> None:
    """Erase a user at once: their row, interactions (with their event ids), stored profile,
    kept lists and cached answers; every process forgets them in the versions it holds, so
    they leave similar-users answers and get the cold-start answer. Impressions already
    counted stay in experiment figures under a pseudonym. A tombstone drops any interaction
    for the id timestamped at or before now that arrives later.

    Redis is cleared first, so that with Redis down the erasure is refused before anything
    has changed; and again after PostgreSQL, for a profile refreshed meanwhile."""
    await app.experiments.push()
    await stored_experiments.drain(app.pool, app.redis)  # the stream names the user until then
    await erasures.clear_redis(app.redis, user_id)
    rules = app.settings.experiment
    await activity.erase_user(
        app.pool, user_id, rules.conversion_types or (), rules.attribution_hours
    )
    app.serving.users_erased([user_id])
    try:
        await erasures.clear_redis(app.redis, user_id)
    except CacheUnavailable:
        log.warning("Redis went away during an erasure; a profile refreshed meanwhile expires")
    await app.serving.announce("users_erased", user_ids=[user_id])
