"""The catalog: items put one at a time or in batches, read, listed, deleted."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from common.models import Addressable, Item, ItemBatch, ItemFields, ItemPage, Text, Upserted
from service.api.body import body_schema, json_body
from service.api.deps import Guarded, PoolDep, Resources, ResourcesDep, require
from service.api.routes import API, ERRORS
from storage import catalog, trending
from workers.factory import EMBED_TASK, TRENDING_TASK

log = logging.getLogger(__name__)

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/items",
    tags=["catalog"],
    dependencies=[require("write")],
    responses=ERRORS,
)

ItemId = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]


@router.put("/{item_id}")
async def put_item(item_id: ItemId, fields: ItemFields, res: ResourcesDep) -> Item:
    """Create or replace one item; its embedding is refreshed in the background."""
    item, revived = await catalog.put_item(res.pool, item_id, fields)
    await _written(res, [item_id], [item_id] if revived else [])
    return item


@router.post("/batch", openapi_extra=body_schema(ItemBatch))
async def put_items(
    batch: Annotated[ItemBatch, json_body(ItemBatch)], res: ResourcesDep
) -> Upserted:
    """Create or replace up to 10,000 items in one transaction: all or nothing."""
    written, revived = await catalog.upsert_items(res.pool, batch.items)
    await _written(res, [item.item_id for item in batch.items], revived)
    return Upserted(upserted=written)


@router.get("/{item_id}")
async def get_item(item_id: ItemId, pool: PoolDep) -> Item:
    """One live item."""
    return await catalog.get_item(pool, item_id)


@router.delete("/{item_id}", status_code=204)
async def delete_item(item_id: ItemId, res: ResourcesDep) -> Response:
    """Remove an item from the catalog and from every answer at once; its history is kept."""
    await catalog.delete_item(res.pool, item_id)
    res.serving.item_deleted(item_id)
    await res.serving.announce("item_deleted", item_id=item_id)
    res.in_background(_ask_for_popular(res))
    return Response(status_code=204)


@router.get("")
async def list_items(
    pool: PoolDep,
    category: Annotated[str | None, Query(min_length=1, max_length=128), Text] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024), Text] = None,
) -> ItemPage:
    """Live items in item_id order; pass `next_cursor` back to get the next page."""
    items, next_cursor = await catalog.list_items(
        pool, category=category, limit=limit, cursor=cursor
    )
    return ItemPage(items=items, next_cursor=next_cursor)


async def _written(res: Resources, item_ids: list[str], revived: list[str]) -> None:
    """Tell every API process about items back from deletion; schedule re-embedding."""
    if revived:
        for item_id in revived:
            res.serving.item_restored(item_id)
        await res.serving.announce("item_restored", item_ids=revived)
    res.in_background(_schedule_embedding(res, sorted(set(item_ids))))
    res.in_background(_ask_for_popular(res))


# A changed catalog asks for fresh popular lists at most this often, across all processes:
# a list short of live items is filled from them (service/fill.py), and after a catalog is
# replaced the lists held name only deleted items until the refresh job runs again.
ASK_SECONDS = 30


async def _ask_for_popular(res: Resources) -> None:
    try:
        if await trending.ask_once(res.redis, ASK_SECONDS):
            await asyncio.to_thread(res.celery.send_task, TRENDING_TASK)
    except Exception:
        # The refresh job runs every minute in any case.
        log.warning("could not ask for fresh popular lists", exc_info=True)


async def _schedule_embedding(res: Resources, item_ids: list[str]) -> None:
    try:
        await asyncio.to_thread(res.celery.send_task, EMBED_TASK, args=[item_ids])
    except Exception:
        # The next build embeds whatever is missing: a lost hint costs time, not data.
        log.warning("could not schedule embedding of %d items", len(item_ids), exc_info=True)
