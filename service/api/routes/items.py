"""The catalog: items put one at a time or in batches, read, listed, deleted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from common.models import (
    Addressable,
    Item,
    ItemBatch,
    ItemFields,
    ItemIdsIn,
    ItemPage,
    ItemsDeleted,
    Text,
    Upserted,
)
from service.api.body import body_schema, json_body
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import catalog

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/items",
    tags=["catalog"],
    dependencies=[require("write")],
    responses=ERRORS,
)

ItemId = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]


@router.put("/{item_id}")
async def put_item(item_id: ItemId, fields: ItemFields, app: AppDep) -> Item:
    """Create or replace one item; its embedding is refreshed in the background."""
    return await catalog.put_item(app, item_id, fields)


@router.post("/batch", openapi_extra=body_schema(ItemBatch))
async def put_items(batch: Annotated[ItemBatch, json_body(ItemBatch)], app: AppDep) -> Upserted:
    """Create or replace up to 10,000 items in one transaction: all or nothing."""
    return Upserted(upserted=await catalog.put_items(app, batch.items))


@router.post("/delete", openapi_extra=body_schema(ItemIdsIn))
async def delete_items(
    body: Annotated[ItemIdsIn, json_body(ItemIdsIn)], app: AppDep
) -> ItemsDeleted:
    """Delete up to 10,000 items in one transaction, as DELETE of each: they leave every
    answer at once. Ids that name no live item are listed in `unknown`."""
    return await catalog.delete_items(app, body.item_ids)


@router.get("/{item_id}")
async def get_item(item_id: ItemId, app: AppDep) -> Item:
    """One live item."""
    return await catalog.get_item(app, item_id)


@router.delete("/{item_id}", status_code=204)
async def delete_item(item_id: ItemId, app: AppDep) -> Response:
    """Remove an item from the catalog and from every answer at once; its history is kept."""
    await catalog.delete_item(app, item_id)
    return Response(status_code=204)


@router.get("")
async def list_items(
    app: AppDep,
    category: Annotated[str | None, Query(min_length=1, max_length=128), Text] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024), Text] = None,
) -> ItemPage:
    """Live items in item_id order; pass `next_cursor` back to get the next page."""
    return await catalog.list_items(app, category, limit, cursor)
