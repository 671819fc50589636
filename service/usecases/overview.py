"""The service at a glance: the active version with its held-out figures, how much data
there is, and the latest builds (the console's Overview)."""

from __future__ import annotations

from dataclasses import dataclass

from common.models import Build, VersionSummary
from service.application import Application
from service.usecases import versions
from storage import builds, sizes

LAST_BUILDS = 5


@dataclass(frozen=True)
class Overview:
    active: VersionSummary | None
    # Per table (items, users, interactions): rows, and whether they were counted exactly.
    sizes: dict[str, tuple[int, bool]]
    builds: list[Build]
    # The version the process answers from (it may lag a new activation by moments).
    serving: int | None


async def overview(app: Application) -> Overview:
    active = await builds.active_version(app.pool)
    summary = (
        VersionSummary(**await builds.get_version(app.pool, active), active=True)
        if active is not None
        else None
    )
    latest = await versions.list_builds(app, LAST_BUILDS)
    return Overview(
        active=summary,
        sizes=await sizes.table_sizes(app.pool),
        builds=latest.builds,
        serving=app.serving.current.version if app.serving.current else None,
    )
