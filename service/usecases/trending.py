"""The trending lists; see indexing/trending.py for each variant's formula."""

from __future__ import annotations

from collections.abc import Sequence

from common.models import TrendingList
from service.application import Application
from service.usecases import item_fields, rules
from service.usecases.user_list import scored


async def trending(
    app: Application,
    variant: str = "hot",
    category: str | None = None,
    limit: int = 10,
    window_hours: int | None = None,
    filter_text: str | None = None,
    fields: str | Sequence[str] | None = None,
    scenario: str | None = None,
) -> TrendingList:
    """The `limit` items trending now by `variant`, over the last `window_hours`, within
    `category` and the filter where given (the whole trending list is filtered: it is
    every item engaged within the window, up to trending.TOP)."""
    kept_to = rules.rules_for(app, category, filter_text, scenario)
    names = item_fields.parse(fields)
    hours = window_hours or app.settings.index.trending_window_hours
    deleted = app.serving.deleted
    found = await app.trending.top(variant, hours, category)
    applied = await rules.resolve(app, kept_to, app.serving.current)
    found = [(i, s) for i, s in found if i not in deleted]
    items = await rules.keep(app, applied, found)
    if variant == "hot" and len(items) < limit:
        # Little or nothing engaged within the window: what is popular is what was, over
        # all of history (service/fill.py). The other variants measure change in the
        # window, and say only what it holds.
        items = await rules.filled(app, applied, items, limit, deleted)
    items = (await rules.boosted(app, applied, items))[0][:limit]
    answer = TrendingList(
        variant=variant,
        category=category,
        window_hours=hours,
        items=[scored(i, s) for i, s in items],
    )
    await item_fields.add(app, answer.items, names)
    return answer
