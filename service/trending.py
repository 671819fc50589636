"""Trending answers: the lists the periodic job keeps in Redis, computed here on a miss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from indexing import trending
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
    index = res.settings.index
    # The default window is kept as long as the periodic job would keep it.
    ttl = 2 * index.trending_refresh_seconds if hours == index.trending_window_hours else None
    lists = trending.all_lists(await store.window_rows(res.pool, hours), res.settings, hours)
    await store.save(res.redis, lists, hours, ttl or ON_DEMAND_SECONDS)
    return lists.get((variant, category), [])
