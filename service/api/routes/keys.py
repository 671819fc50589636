"""API keys, managed by admins. A new key's token is shown once; only its hash is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from common.models import ApiKeyIn, ApiKeyList, NewApiKey, Text
from service.api.deps import Guarded, PoolDep, ResourcesDep, require
from service.api.routes import API, ERRORS
from storage import keys

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/keys",
    tags=["credentials"],
    dependencies=[require("admin")],
    responses=ERRORS,
)


@router.post("", status_code=201)
async def create_key(body: ApiKeyIn, pool: PoolDep) -> NewApiKey:
    """Create a key with one role: read, write or admin."""
    return await keys.create_key(pool, body.name, body.role)


@router.get("")
async def list_keys(pool: PoolDep) -> ApiKeyList:
    """Every key, revoked ones included, without tokens."""
    return ApiKeyList(keys=await keys.list_keys(pool))


@router.delete("/{key_id}", status_code=204)
async def revoke_key(
    key_id: Annotated[str, Path(min_length=1, max_length=64), Text], res: ResourcesDep
) -> Response:
    """Revoke a key: it stops working here at once and everywhere within seconds."""
    await keys.revoke_key(res.pool, key_id)
    res.auth.forget()
    return Response(status_code=204)
