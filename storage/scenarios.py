"""Scenarios (placements) in PostgreSQL: a scenario is stored whole, as it was PUT."""

from __future__ import annotations

import asyncpg

from common.errors import UnknownScenario
from common.models import Scenario, ScenarioIn
from storage.db import database_errors

_COLUMNS = "scenario_id, body, created_at, updated_at"


def _scenario(row: asyncpg.Record) -> Scenario:
    return Scenario(
        scenario_id=row["scenario_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        **row["body"],
    )


async def put_scenario(pool: asyncpg.Pool, scenario_id: str, body: ScenarioIn) -> Scenario:
    """Create or replace the scenario."""
    with database_errors():
        row = await pool.fetchrow(
            """INSERT INTO scenarios (scenario_id, body) VALUES ($1, $2)
               ON CONFLICT (scenario_id) DO UPDATE SET body = EXCLUDED.body, updated_at = now()
               RETURNING scenario_id, body, created_at, updated_at""",
            scenario_id,
            body.model_dump(mode="json", exclude_none=True),
        )
    assert row is not None
    return _scenario(row)


async def get_scenario(pool: asyncpg.Pool, scenario_id: str) -> Scenario:
    with database_errors():
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM scenarios WHERE scenario_id = $1",
            scenario_id,
        )
    if row is None:
        raise UnknownScenario(f"scenario {scenario_id!r} does not exist")
    return _scenario(row)


async def list_scenarios(pool: asyncpg.Pool) -> list[Scenario]:
    with database_errors():
        rows = await pool.fetch(f"SELECT {_COLUMNS} FROM scenarios ORDER BY scenario_id")
    return [_scenario(row) for row in rows]


async def delete_scenario(pool: asyncpg.Pool, scenario_id: str) -> None:
    with database_errors():
        status = await pool.execute("DELETE FROM scenarios WHERE scenario_id = $1", scenario_id)
    if status == "DELETE 0":
        raise UnknownScenario(f"scenario {scenario_id!r} does not exist")
