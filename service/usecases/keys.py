"""API keys: created with one role, listed without their tokens, revoked."""

from __future__ import annotations

from common.models import ApiKeyList, NewApiKey, Role
from service.application import Application
from storage import keys


async def create_key(app: Application, name: str, role: Role) -> NewApiKey:
    """A new key; its token is in this answer only (only its hash is stored)."""
    return await keys.create_key(app.pool, name, role)


async def list_keys(app: Application) -> ApiKeyList:
    """Every key, revoked ones included, without tokens."""
    return ApiKeyList(keys=await keys.list_keys(app.pool))


async def revoke_key(app: Application, key_id: str) -> None:
    """Revoke a key: it stops working in this process at once, in the others within the
    time they keep a key's verdict."""
    await keys.revoke_key(app.pool, key_id)
    app.auth.forget()
