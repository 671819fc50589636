"""Experiments: start one, read its results per variant with intervals and a chart of
conversion over time, stop it. Admin pages (starting and stopping need admin through
/api/v1 too)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response

from common.errors import InvalidInput
from common.models import ExperimentIn
from service.console import charts
from service.console.web import PREFIX, Ctx, go, page
from service.usecases import experiments

router = APIRouter(prefix=PREFIX, include_in_schema=False)
EXAMPLE_VARIANTS = (
    '[\n  {"name": "control", "weight": 1},\n'
    '  {"name": "treatment", "weight": 1, "params": {"strategy": "collaborative"}}\n]'
)


@router.get("/experiments")
@page("admin", "GET", "/api/v1/experiments")
async def experiments_page(ctx: Ctx) -> Response:
    listed = await experiments.list_all(ctx.app)
    return ctx.render("experiments.html", listed=listed.experiments, example=EXAMPLE_VARIANTS)


@router.post("/experiments")
@page("admin", "POST", "/api/v1/experiments")
async def create(ctx: Ctx) -> Response:
    try:
        variants = orjson.loads(ctx.form.get("variants") or "[]")
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"variants: not JSON ({exc})") from None
    body = ExperimentIn.model_validate(
        {
            "experiment_id": ctx.form.get("experiment_id", ""),
            "description": ctx.form.get("description") or None,
            "guardrail": ctx.form.get("guardrail") == "on",
            "variants": variants,
        }
    )
    created = await experiments.create(ctx.app, body)
    return go("experiments", created.experiment_id)


@router.get("/experiments/{experiment_id}")
@page("admin", "GET", "/api/v1/experiments/results")
async def experiment_page(ctx: Ctx) -> Response:
    experiment_id = ctx.path_id("experiment_id")
    experiment = await experiments.get(ctx.app, experiment_id)
    results = await experiments.results_of(ctx.app, experiment_id)
    timeline = await experiments.timeline(ctx.app, experiment_id)
    chart = charts.line_chart(
        "Conversion rate by variant over time (users converted / users shown a list)",
        [(v.name, [(p.at, p.conversion_rate) for p in v.points]) for v in timeline.variants],
        percent=True,
    )
    return ctx.render(
        "experiment.html", experiment=experiment, results=results, chart=chart, timeline=timeline
    )


@router.post("/experiments/{experiment_id}/stop")
@page("admin", "POST", "/api/v1/experiments/stop")
async def stop(ctx: Ctx) -> Response:
    experiment_id = ctx.path_id("experiment_id")
    await experiments.stop(ctx.app, experiment_id, ctx.form.get("reason") or None)
    return go("experiments", experiment_id)
