"""Scenarios (placements): stored, listed, replaced and deleted by admins; every API process
applies a change within seconds (service/scenarios.py)."""

from __future__ import annotations

from common.models import Scenario, ScenarioIn, ScenarioList
from indexing.filters import InvalidFilter
from service.application import Application
from storage import scenarios as stored


def _check_filters(app: Application, body: ScenarioIn) -> None:
    """Each filter parses, or the scenario is refused naming which and where."""
    named = [("filter", body.filter)] + [
        (f"boosters[{n}].filter", b.filter) for n, b in enumerate(body.boosters)
    ]
    for field, text in named:
        if text:
            try:
                app.filters.compiled(text)
            except InvalidFilter as refused:
                raise refused.named(field) from None


def check_filter(app: Application, text: str) -> None:
    """Whether a filter parses: raises InvalidFilter saying where it does not."""
    app.filters.compiled(text)


async def put_scenario(app: Application, scenario_id: str, body: ScenarioIn) -> Scenario:
    _check_filters(app, body)
    scenario = await stored.put_scenario(app.pool, scenario_id, body)
    await _changed(app)
    return scenario


async def get_scenario(app: Application, scenario_id: str) -> Scenario:
    return await stored.get_scenario(app.pool, scenario_id)


async def list_scenarios(app: Application) -> ScenarioList:
    return ScenarioList(scenarios=await stored.list_scenarios(app.pool))


async def delete_scenario(app: Application, scenario_id: str) -> None:
    await stored.delete_scenario(app.pool, scenario_id)
    await _changed(app)


async def _changed(app: Application) -> None:
    """This process applies the change at once; the others on the announcement, or by
    their poll should it be lost."""
    await app.scenarios.reload()
    await app.serving.announce("scenarios_changed")
