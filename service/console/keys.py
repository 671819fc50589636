"""Keys: create one (its token shown once, on the page that created it), list, revoke.
Admin pages, as /api/v1/keys is."""

from __future__ import annotations

from fastapi import APIRouter, Response

from common.models import ApiKeyIn
from service.console.web import PREFIX, Ctx, go, page
from service.usecases import keys

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/keys")
@page("admin", "GET", "/api/v1/keys")
async def keys_page(ctx: Ctx) -> Response:
    listed = await keys.list_keys(ctx.app)
    return ctx.render("keys.html", listed=listed.keys, created=None)


@router.post("/keys")
@page("admin", "POST", "/api/v1/keys")
async def create(ctx: Ctx) -> Response:
    body = ApiKeyIn.model_validate(
        {"name": ctx.form.get("name", ""), "role": ctx.form.get("role", "")}
    )
    created = await keys.create_key(ctx.app, body.name, body.role)
    listed = await keys.list_keys(ctx.app)
    # The one page that shows the token: answered to this POST, never kept or redirected to.
    return ctx.render("keys.html", 201, listed=listed.keys, created=created)


@router.post("/keys/{key_id}/revoke")
@page("admin", "DELETE", "/api/v1/keys")
async def revoke(ctx: Ctx) -> Response:
    await keys.revoke_key(ctx.app, ctx.path_id("key_id"))
    return go("keys")
