"""API keys, managed by admins. A new key's token is shown once; only its hash is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from common.models import ApiKeyIn, ApiKeyList, NewApiKey, Text
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import keys

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/keys",
    tags=["credentials"],
    dependencies=[require("admin")],
    responses=ERRORS,
)


@router.post("", status_code=201)
async def create_key(body: ApiKeyIn, app: AppDep) -> NewApiKey:
    """Create a key with one role: read, write or admin."""
    return await keys.create_key(app, body.name, body.role)


@router.get("")
async def list_keys(app: AppDep) -> ApiKeyList:
    """Every key, revoked ones included, without tokens."""
    return await keys.list_keys(app)


@router.delete("/{key_id}", status_code=204)
async def revoke_key(
    key_id: Annotated[str, Path(min_length=1, max_length=64), Text], app: AppDep
) -> Response:
    """Revoke a key: it stops working here at once and everywhere within seconds."""
    await keys.revoke_key(app, key_id)
    return Response(status_code=204)
