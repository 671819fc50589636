"""A/B experiments: created, read, stopped, and their results.

Every API process holds the running experiments (service/experiments.py); a change here is
announced, so the others reload within a moment.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from datetime import UTC, datetime, timedelta

from common.errors import CacheUnavailable
from common.models import (
    Experiment,
    ExperimentIn,
    ExperimentList,
    ExperimentResults,
    ExperimentTimeline,
    TimelinePoint,
    VariantTimeline,
)
from experiments import design, results
from service.application import Application
from storage import experiments as stored


async def create(app: Application, body: ExperimentIn) -> Experiment:
    """Start an experiment; its users are assigned variants by weight from the next request."""
    params = design.check_variants(body.variants)
    pinned = {p.index_version for p in params if p.index_version is not None}
    created = await stored.create(app.pool, body, body.salt or secrets.token_hex(16), pinned)
    await app.experiments.changed()
    return created


async def list_all(app: Application) -> ExperimentList:
    """Every experiment, newest first."""
    return ExperimentList(experiments=await stored.all_of(app.pool))


async def get(app: Application, experiment_id: str) -> Experiment:
    return await stored.get(app.pool, experiment_id)


async def stop(app: Application, experiment_id: str, reason: str | None) -> Experiment:
    """End an experiment: its users get the default answer again; its results stay."""
    stopped = await stored.stop(app.pool, experiment_id, reason)
    await app.experiments.changed()
    return stopped


async def results_of(app: Application, experiment_id: str) -> ExperimentResults:
    """Per variant: users, impressions, clicks, CTR, conversions, and the test against
    control. Impressions still waiting in Redis are counted first."""
    experiment = await stored.get(app.pool, experiment_id)
    with contextlib.suppress(CacheUnavailable):
        await app.experiments.push()  # this process's latest answers count too
    found = await results.compute(app.pool, app.redis, app.settings.experiment, experiment)
    app.experiments.remember(experiment_id, found.model_dump(mode="json"))
    return found


# A chart's steps: never finer than a minute, and about this many over the experiment's life.
TIMELINE_STEPS = 48
MIN_STEP_SECONDS = 60


async def timeline(app: Application, experiment_id: str) -> ExperimentTimeline:
    """Each variant's conversion rate over the experiment's life, step by step: the users
    first exposed up to each step and how many of them have converted (by the results'
    rule), so the last step is the results. Impressions still
    waiting in Redis are counted first."""
    experiment = await stored.get(app.pool, experiment_id)
    with contextlib.suppress(CacheUnavailable):
        await app.experiments.push()
        await results.drain(app.pool, app.redis)  # bounded, as for the results
    ended = experiment.stopped_at or datetime.now(UTC)
    span = max(0.0, (ended - experiment.created_at).total_seconds())
    step = max(MIN_STEP_SECONDS, math.ceil(span / TIMELINE_STEPS / MIN_STEP_SECONDS) * 60)
    settings = app.settings.experiment
    rows = await stored.timeline(
        app.pool,
        experiment_id,
        settings.conversion_types or (),
        settings.attribution_hours,
        step,
    )
    totals: dict[str, list[int]] = {v.name: [0, 0] for v in experiment.variants}
    points: dict[str, list[TimelinePoint]] = {name: [] for name in totals}
    for variant, start, users, converted in rows:
        total = totals.setdefault(variant, [0, 0])
        total[0] += users
        total[1] += converted
        points.setdefault(variant, []).append(
            TimelinePoint(
                at=start + timedelta(seconds=step),
                users=total[0],
                converted_users=total[1],
                conversion_rate=total[1] / total[0],
            )
        )
    return ExperimentTimeline(
        experiment_id=experiment_id,
        step_seconds=step,
        variants=[VariantTimeline(name=n, points=p) for n, p in points.items()],
    )
