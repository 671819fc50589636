"""Trending, Items and Users: the lists the service answers, as an operator checks them.

A `read` key sees here only what it may read through /api/v1 and nothing of users'
histories: trending, an item's similar items, and a user's list ("try it"). Item records,
the catalog, search and a user's record and history need `write`, as their /api/v1 routes
do. Nothing here records impressions: no list is asked under an experiment."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import TypeAdapter

from common.errors import ClientError, InvalidInput, NotFound
from common.models import FilterText, Tag
from service.console.web import PREFIX, Ctx, go, page, peer
from service.usecases import catalog, interactions, search, similar, trending
from service.usecases.user_list import ListRequest, user_list

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SHOWN = 20
FIELDS = ("title", "category")
VARIANTS = ("hot", "rising", "fresh", "viral")
TAG: TypeAdapter[str] = TypeAdapter(Tag)
FILTER: TypeAdapter[str] = TypeAdapter(FilterText)


@router.get("/trending")
@page("read", "GET", "/api/v1/trending")
async def trending_page(ctx: Ctx) -> Response:
    variant = ctx.query("variant") or "hot"
    if variant not in VARIANTS:
        raise InvalidInput(f"variant: one of {', '.join(VARIANTS)}")
    category = ctx.query_as("category", TAG)
    found = await trending.trending(
        ctx.app, variant, category, SHOWN, None, None, FIELDS, ctx.query_as("scenario", TAG)
    )
    return ctx.render(
        "trending.html", found=found, variants=VARIANTS, variant=variant, category=category
    )


@router.get("/items")
@page("read", "GET", "/api/v1/items/similar")
async def items_page(ctx: Ctx) -> Response:
    """A `read` key: the way to an item's similar items. Others: the catalog a page at a
    time (by category), or a search."""
    wanted = ctx.query_id("item_id")
    if wanted is not None:
        return go("items", wanted)
    text, listed, found = ctx.query("q"), None, None
    if ctx.may("write"):
        if text:
            # Counted as /api/v1 counts a search (its own, lower, limit).
            await ctx.app.limiter.admit(ctx.principal, peer(ctx.request), "POST", "/api/v1/search")
            found = await search.search(ctx.app, text[:1000], SHOWN, None, None, FIELDS)
        else:
            listed = await catalog.list_items(
                ctx.app, ctx.query_as("category", TAG), SHOWN, ctx.query("cursor")
            )
    return ctx.render("items.html", text=text, listed=listed, found=found)


@router.get("/items/{item_id}")
@page("read", "GET", "/api/v1/items/similar")
async def item_page(ctx: Ctx) -> Response:
    item_id = ctx.path_id("item_id")
    item = await catalog.get_item(ctx.app, item_id) if ctx.may("write") else None
    alike = await similar.similar_items(
        ctx.app, item_id, SHOWN, None, None, FIELDS, ctx.query_as("scenario", TAG)
    )
    return ctx.render("item.html", item_id=item_id, item=item, alike=alike)


@router.get("/users")
@page("read", "GET", "/api/v1/recommendations")
async def users_page(ctx: Ctx) -> Response:
    wanted = ctx.query_id("user_id")
    if wanted is not None:
        return go("users", wanted)
    return ctx.render("users.html")


@router.get("/users/{user_id}")
@page("read", "GET", "/api/v1/recommendations")
async def user_page(ctx: Ctx) -> Response:
    """The user's list with its reasons, and "try it": the same list under another
    scenario or filter. With `write`: the user's record and history, a page at a time."""
    user_id = ctx.path_id("user_id")
    scenario, filter_text = ctx.query_as("scenario", TAG), ctx.query_as("filter", FILTER)
    asked = ListRequest(
        user_id=user_id,
        limit=SHOWN,
        scenario=scenario,
        filter=filter_text,
        fields=FIELDS,
        # "because you liked X" names the user's history: a read key gets the list only.
        explain=ctx.may("write"),
        fresh=True,  # what the rules give now, not a list cached before a change
    )
    listed = refused = None
    try:
        listed = await user_list(ctx.app, asked)
    except ClientError as exc:  # a filter that does not parse, a scenario that is not there
        refused = exc.message
    user = history = None
    if ctx.may("write"):
        try:
            user = await interactions.get_user(ctx.app, user_id)
        except NotFound:
            user = None  # no record: a new user, answered with the popular items
        if user is not None:  # no record, no history to page through
            history = await interactions.history(ctx.app, user_id, SHOWN, ctx.query("cursor"))
    return ctx.render(
        "user.html",
        user_id=user_id,
        listed=listed,
        refused=refused,
        user=user,
        history=history,
        scenario=scenario,
        filter_text=filter_text,
    )
