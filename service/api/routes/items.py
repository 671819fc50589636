"""The catalog: items put one at a time or in batches, read, listed, deleted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from common.models import Item, ItemBatch, ItemFields, ItemPage, Upserted
from service.api.body import body_schema, json_body
from service.api.deps import PoolDep, require
from service.api.routes import API
from storage import catalog

router = APIRouter(prefix=f"{API}/items", tags=["catalog"], dependencies=[require("write")])

ItemId = Annotated[str, Path(min_length=1, max_length=128)]


@router.put("/{item_id}")
async def put_item(item_id: ItemId, fields: ItemFields, pool: PoolDep) -> Item:
    """Create or replace one item; its embedding is refreshed by the next build."""
    return await catalog.put_item(pool, item_id, fields)


@router.post("/batch", openapi_extra=body_schema(ItemBatch))
async def put_items(batch: Annotated[ItemBatch, json_body(ItemBatch)], pool: PoolDep) -> Upserted:
    """Create or replace up to 10,000 items in one transaction: all or nothing."""
    return Upserted(upserted=await catalog.upsert_items(pool, batch.items))


@router.get("/{item_id}")
async def get_item(item_id: ItemId, pool: PoolDep) -> Item:
    """One live item."""
    return await catalog.get_item(pool, item_id)


@router.delete("/{item_id}", status_code=204)
async def delete_item(item_id: ItemId, pool: PoolDep) -> Response:
    """Remove an item from the catalog and from every answer; its history is kept."""
    await catalog.delete_item(pool, item_id)
    return Response(status_code=204)


@router.get("")
async def list_items(
    pool: PoolDep,
    category: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> ItemPage:
    """Live items in item_id order; pass `next_cursor` back to get the next page."""
    items, next_cursor = await catalog.list_items(
        pool, category=category, limit=limit, cursor=cursor
    )
    return ItemPage(items=items, next_cursor=next_cursor)
