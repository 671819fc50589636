"""Trending answers: the lists the periodic job keeps in Redis, computed here on a miss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage import trending as store

if TYPE_CHECKING:
    from service.api.deps import Resources

# Lists for windows the periodic job does not keep are computed on demand and kept this long.
ON_DEMAND_SECONDS = 60.0
DEPTH = 1_000


async def top(
    res: Resources, variant: str, hours: int, category: str | None
) -> list[tuple[str, float]]:
    found = await store.read(res.redis, variant, hours, category, DEPTH)
    if found is not None:
        return found
    if hours == res.settings.index.trending_window_hours:
        lists = await store.refresh_default(res.pool, res.redis, res.settings)
    else:
        lists = await store.compute_and_store(
            res.pool, res.redis, res.settings, hours, ON_DEMAND_SECONDS
        )
    return lists.get((variant, category), [])
