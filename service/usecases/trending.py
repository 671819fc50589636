"""The trending lists; see indexing/trending.py for each variant's formula."""

from __future__ import annotations

from common.models import TrendingList
from service import fill
from service.application import Application
from service.usecases.user_list import scored


async def trending(
    app: Application,
    variant: str = "hot",
    category: str | None = None,
    limit: int = 10,
    window_hours: int | None = None,
) -> TrendingList:
    """The `limit` items trending now by `variant`, over the last `window_hours`."""
    hours = window_hours or app.settings.index.trending_window_hours
    deleted = app.serving.deleted
    found = await app.trending.top(variant, hours, category)
    items = [(i, s) for i, s in found if i not in deleted][:limit]
    if variant == "hot" and len(items) < limit:
        # Little or nothing engaged within the window: what is popular is what was, over
        # all of history (service/fill.py). The other variants measure change in the
        # window, and say only what it holds.
        items = fill.filled(items, limit, app.trending.popular(category), deleted)
    return TrendingList(
        variant=variant,
        category=category,
        window_hours=hours,
        items=[scored(i, s) for i, s in items],
    )
