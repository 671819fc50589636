"""A/B experiments: created, read, stopped, and their results.

Every API process holds the running experiments (service/experiments.py); a change here is
announced, so the others reload within a moment.
"""

from __future__ import annotations

import contextlib
import secrets

from common.errors import CacheUnavailable
from common.models import Experiment, ExperimentIn, ExperimentList, ExperimentResults
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
