"""Scenarios: listed, viewed and edited, the filter checked as it is typed. Admin pages, as
/api/v1/scenarios is."""

from __future__ import annotations

from typing import get_args

import orjson
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from common.errors import ClientError, InvalidInput, NotFound
from common.models import FILTER_TEXT, ScenarioIn, ScenarioStrategy
from service.console.web import PREFIX, Ctx, go, page
from service.usecases import scenarios

router = APIRouter(prefix=PREFIX, include_in_schema=False)
STRATEGIES: tuple[str, ...] = get_args(ScenarioStrategy)


@router.get("/scenarios")
@page("admin", "GET", "/api/v1/scenarios")
async def scenarios_page(ctx: Ctx) -> Response:
    wanted = ctx.query_id("scenario_id")
    if wanted is not None:
        return go("scenarios", wanted)
    listed = await scenarios.list_scenarios(ctx.app)
    return ctx.render("scenarios.html", listed=listed.scenarios)


@router.get("/scenarios/{scenario_id}")
@page("admin", "GET", "/api/v1/scenarios")
async def scenario_page(ctx: Ctx) -> Response:
    scenario_id = ctx.path_id("scenario_id")
    try:
        found: ScenarioIn | None = await scenarios.get_scenario(ctx.app, scenario_id)
    except NotFound:
        found = None  # a new one
    return _editor(ctx, scenario_id, found, None, ctx.query("saved") is not None)


@router.post("/scenarios/{scenario_id}")
@page("admin", "PUT", "/api/v1/scenarios")
async def save(ctx: Ctx) -> Response:
    scenario_id = ctx.path_id("scenario_id")
    form = ctx.form
    try:
        body = ScenarioIn.model_validate(
            {
                "description": form.get("description") or None,
                "filter": form.get("filter") or None,
                "strategy": form.get("strategy") or "hybrid",
                "exclude_seen": {"yes": True, "no": False}.get(form.get("exclude_seen", "")),
                "boosters": _json(form.get("boosters"), "boosters", []),
                "diversity": _json(form.get("diversity"), "diversity", None),
            }
        )
        await scenarios.put_scenario(ctx.app, scenario_id, body)
    except ClientError as exc:
        return _editor(ctx, scenario_id, None, exc.message, False, status=exc.status)
    return go("scenarios", scenario_id, query="saved=1")


@router.post("/filters/check")
@page("admin", "PUT", "/api/v1/scenarios")
async def check_filter(ctx: Ctx) -> Response:
    """What the editor's script asks as the filter is typed: {ok, message}."""
    text = ctx.form.get("filter", "")
    if len(text) > FILTER_TEXT:
        return JSONResponse({"ok": False, "message": f"longer than {FILTER_TEXT} characters"})
    try:
        if text.strip():
            scenarios.check_filter(ctx.app, text)
    except ClientError as exc:
        return JSONResponse({"ok": False, "message": exc.message})
    return JSONResponse({"ok": True, "message": "the filter parses"})


def _editor(
    ctx: Ctx,
    scenario_id: str,
    found: ScenarioIn | None,
    refused: str | None,
    saved: bool,
    status: int = 200,
) -> Response:
    form = ctx.form
    if found is not None:
        values = {
            "description": found.description or "",
            "filter": found.filter or "",
            "strategy": found.strategy,
            "exclude_seen": {True: "yes", False: "no", None: ""}[found.exclude_seen],
            "boosters": _pretty([b.model_dump(mode="json") for b in found.boosters]),
            "diversity": _pretty(found.diversity.model_dump(mode="json"))
            if found.diversity
            else "",
        }
    else:  # a new scenario, or the form as posted when it was refused
        values = {k: form.get(k, "") for k in ("description", "filter", "strategy")}
        values |= {k: form.get(k, "") for k in ("exclude_seen", "boosters", "diversity")}
        values["boosters"] = values["boosters"] or "[]"
    return ctx.render(
        "scenario.html",
        status,
        scenario_id=scenario_id,
        values=values,
        refused=refused,
        saved=saved,
        exists=found is not None,
        strategies=STRATEGIES,
    )


def _json(text: str | None, field: str, empty: object) -> object:
    if not text or not text.strip():
        return empty
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{field}: not JSON ({exc})") from None


def _pretty(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
