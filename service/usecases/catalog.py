"""The catalog: items put one at a time or in batches, read, listed, deleted.

A change tells every API process at once (items deleted or back from deletion), asks the
workers to embed the items' new text, and asks for fresh popular lists, which fill lists
left short of live items (service/fill.py).
"""

from __future__ import annotations

import asyncio
import logging

from common import tracing
from common.models import Item, ItemFields, ItemIn, ItemPage, ItemsDeleted
from service.application import Application
from storage import catalog, trending
from workers.factory import EMBED_TASK, TRENDING_TASK

log = logging.getLogger(__name__)

# A changed catalog asks for fresh popular lists at most this often, across all processes:
# after a catalog is replaced the lists held name only deleted items until the refresh job
# runs again.
ASK_SECONDS = 30


async def put_item(app: Application, item_id: str, fields: ItemFields) -> Item:
    """Create or replace one item; its embedding is refreshed in the background."""
    item, revived = await catalog.put_item(app.pool, item_id, fields)
    app.catalog_fields.noted([(item_id, item)])
    await _written(app, [item_id], [item_id] if revived else [])
    return item


async def put_items(app: Application, items: list[ItemIn]) -> int:
    """Create or replace items in one transaction, all or nothing; returns how many."""
    written, revived = await catalog.upsert_items(app.pool, items)
    app.in_background(_read_changes(app))
    await _written(app, [item.item_id for item in items], revived)
    return written


async def get_item(app: Application, item_id: str) -> Item:
    """One live item."""
    return await catalog.get_item(app.pool, item_id)


async def list_items(
    app: Application, category: str | None, limit: int, cursor: str | None
) -> ItemPage:
    """Live items in item_id order, a page at a time."""
    items, next_cursor = await catalog.list_items(
        app.pool, category=category, limit=limit, cursor=cursor
    )
    return ItemPage(items=items, next_cursor=next_cursor)


async def delete_item(app: Application, item_id: str) -> None:
    """Remove an item from the catalog and from every answer at once; its history is kept."""
    await catalog.delete_item(app.pool, item_id)
    app.catalog_fields.noted([(item_id, None)])
    app.serving.item_deleted(item_id)
    await app.serving.announce("item_deleted", item_id=item_id)
    app.in_background(_ask_for_popular(app))


async def delete_items(app: Application, item_ids: list[str]) -> ItemsDeleted:
    """DELETE of each, in one transaction: the items leave every answer at once."""
    deleted = await catalog.delete_items(app.pool, item_ids)
    app.catalog_fields.noted([(item_id, None) for item_id in deleted])
    app.serving.items_deleted(deleted)
    if deleted:
        await app.serving.announce("items_deleted", item_ids=deleted)
        app.in_background(_ask_for_popular(app))
    gone = set(deleted)
    unknown = sorted({i for i in item_ids if i not in gone})
    return ItemsDeleted(deleted=len(deleted), unknown=unknown)


async def _written(app: Application, item_ids: list[str], revived: list[str]) -> None:
    """Tell every API process about items back from deletion; schedule re-embedding."""
    if revived:
        for item_id in revived:
            app.serving.item_restored(item_id)
        await app.serving.announce("item_restored", item_ids=revived)
    app.in_background(_schedule_embedding(app, sorted(set(item_ids))))
    app.in_background(_ask_for_popular(app))


async def _read_changes(app: Application) -> None:
    """Filters judge the written items by their new fields at once in this process (the
    others read the changes within INDEX_POLL_SECONDS)."""
    try:
        await app.catalog_fields.refresh()
    except Exception:
        log.warning("could not read the catalog's changes", exc_info=True)


async def _ask_for_popular(app: Application) -> None:
    try:
        if await trending.ask_once(app.redis, ASK_SECONDS):
            await asyncio.to_thread(app.celery.send_task, TRENDING_TASK)
    except Exception:
        # The refresh job runs every minute in any case.
        log.warning("could not ask for fresh popular lists", exc_info=True)


async def _schedule_embedding(app: Application, item_ids: list[str]) -> None:
    try:
        await asyncio.to_thread(
            app.celery.send_task, EMBED_TASK, args=[item_ids], headers=tracing.task_headers()
        )
    except Exception:
        # The next build embeds whatever is missing: a lost hint costs time, not data.
        log.warning("could not schedule embedding of %d items", len(item_ids), exc_info=True)
