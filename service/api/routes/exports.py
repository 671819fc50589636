"""Batch exports, for ops: queue one, watch it, download its JSON lines."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from common.models import Export, ExportIn, ExportQueued
from service.api.body import body_schema, json_body
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import exports

ExportId = Annotated[str, Path(min_length=1, max_length=64)]
router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/exports",
    tags=["exports"],
    dependencies=[require("admin")],
    responses=ERRORS,
)


# Where an answer's export_id leads (OpenAPI links, which generated clients and fuzzers follow
# instead of guessing from names).
_FOLLOW = {
    name: {"operationId": operation, "parameters": {"export_id": "$response.body#/export_id"}}
    for name, operation in (
        ("state", "get_export_api_v1_exports__export_id__get"),
        ("download", "download_export_api_v1_exports__export_id__download_get"),
    )
}


@router.post(
    "",
    status_code=202,
    openapi_extra=body_schema(ExportIn),
    responses={202: {"description": "Queued", "links": _FOLLOW}},
)
async def create_export(
    body: Annotated[ExportIn, json_body(ExportIn)], app: AppDep
) -> ExportQueued:
    """Queue an export: recommendations for users, or similar items for items, those in
    `ids` or all, as the live endpoints answer them."""
    return await exports.create(app, body)


@router.get("/{export_id}")
async def get_export(export_id: ExportId, app: AppDep) -> Export:
    """An export's state, progress (0..1) and rows written so far."""
    return await exports.get(app, export_id)


@router.get(
    "/{export_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def download_export(export_id: ExportId, app: AppDep) -> StreamingResponse:
    """The export's JSON lines, one per user or item: `{"id", "items": [{item_id, score}]}`,
    streamed from the object store; 409 `not_ready` until it has succeeded."""
    chunks = await exports.download(app, export_id)
    return StreamingResponse(chunks, media_type="application/x-ndjson")
