"""A/B experiments: create, read, stop, and their results. Writes need the admin role."""

from __future__ import annotations

import contextlib
import secrets
from typing import Annotated

from fastapi import APIRouter, Path

from common.errors import CacheUnavailable
from common.models import (
    Addressable,
    Experiment,
    ExperimentIn,
    ExperimentList,
    ExperimentResults,
    StopIn,
    Text,
)
from experiments import design, results
from service.api.deps import Guarded, ResourcesDep, require
from service.api.routes import API, ERRORS
from storage import experiments as stored

router = APIRouter(
    route_class=Guarded,
    prefix=f"{API}/experiments",
    tags=["experiments"],
    dependencies=[require("read")],
    responses=ERRORS,
)

ExperimentId = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]


@router.post(
    "",
    status_code=201,
    dependencies=[require("admin")],
    responses={409: {"description": "an experiment with this id exists"}},
)
async def create(body: ExperimentIn, res: ResourcesDep) -> Experiment:
    """Start an experiment; its users are assigned variants by weight from the next request."""
    params = design.check_variants(body.variants)
    pinned = {p.index_version for p in params if p.index_version is not None}
    created = await stored.create(res.pool, body, body.salt or secrets.token_hex(16), pinned)
    await res.experiments.changed()
    return created


@router.get("")
async def list_experiments(res: ResourcesDep) -> ExperimentList:
    """Every experiment, newest first; stopped ones have `active` false."""
    return ExperimentList(experiments=await stored.all_of(res.pool))


@router.get("/{experiment_id}")
async def get_experiment(experiment_id: ExperimentId, res: ResourcesDep) -> Experiment:
    """One experiment, with each variant's state."""
    return await stored.get(res.pool, experiment_id)


@router.post("/{experiment_id}/stop", dependencies=[require("admin")])
async def stop(
    experiment_id: ExperimentId, res: ResourcesDep, body: StopIn | None = None
) -> Experiment:
    """End an experiment: its users get the default answer again; its results stay."""
    stopped = await stored.stop(res.pool, experiment_id, body.reason if body else None)
    await res.experiments.changed()
    return stopped


@router.get("/{experiment_id}/results")
async def experiment_results(experiment_id: ExperimentId, res: ResourcesDep) -> ExperimentResults:
    """Per variant: users, impressions, clicks, CTR, conversions, and the test against
    control. Impressions still waiting in Redis are counted first."""
    experiment = await stored.get(res.pool, experiment_id)
    with contextlib.suppress(CacheUnavailable):
        await res.experiments.push()  # this process's latest answers count too
    found = await results.compute(res.pool, res.redis, res.settings.experiment, experiment)
    res.experiments.remember(experiment_id, found.model_dump(mode="json"))
    return found
