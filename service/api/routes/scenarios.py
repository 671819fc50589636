"""Scenarios (placements): a list's rules stored under a name, applied with `scenario=` on
every list endpoint. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from common.models import Addressable, Scenario, ScenarioIn, ScenarioList, Text
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import scenarios

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/scenarios",
    tags=["scenarios"],
    dependencies=[require("admin")],
    responses=ERRORS,
)

ScenarioId = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]


@router.put("/{scenario_id}")
async def put(scenario_id: ScenarioId, body: ScenarioIn, app: AppDep) -> Scenario:
    """Create or replace a scenario; every API process applies it within seconds."""
    return await scenarios.put_scenario(app, scenario_id, body)


@router.get("")
async def list_all(app: AppDep) -> ScenarioList:
    return await scenarios.list_scenarios(app)


@router.get("/{scenario_id}")
async def get(scenario_id: ScenarioId, app: AppDep) -> Scenario:
    return await scenarios.get_scenario(app, scenario_id)


@router.delete("/{scenario_id}", status_code=204)
async def delete(scenario_id: ScenarioId, app: AppDep) -> Response:
    await scenarios.delete_scenario(app, scenario_id)
    return Response(status_code=204)
