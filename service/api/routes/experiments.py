"""A/B experiments: create, read, stop, and their results. Writes need the admin role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from common.models import (
    Addressable,
    Experiment,
    ExperimentIn,
    ExperimentList,
    ExperimentResults,
    ExperimentTimeline,
    StopIn,
    Text,
)
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import experiments

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
async def create(body: ExperimentIn, app: AppDep) -> Experiment:
    """Start an experiment; its users are assigned variants by weight from the next request."""
    return await experiments.create(app, body)


@router.get("")
async def list_experiments(app: AppDep) -> ExperimentList:
    """Every experiment, newest first; stopped ones have `active` false."""
    return await experiments.list_all(app)


@router.get("/{experiment_id}")
async def get_experiment(experiment_id: ExperimentId, app: AppDep) -> Experiment:
    """One experiment, with each variant's state."""
    return await experiments.get(app, experiment_id)


@router.post("/{experiment_id}/stop", dependencies=[require("admin")])
async def stop(experiment_id: ExperimentId, app: AppDep, body: StopIn | None = None) -> Experiment:
    """End an experiment: its users get the default answer again; its results stay."""
    return await experiments.stop(app, experiment_id, body.reason if body else None)


@router.get("/{experiment_id}/results")
async def experiment_results(experiment_id: ExperimentId, app: AppDep) -> ExperimentResults:
    """Per variant: users, impressions, clicks, CTR, conversions, and the test against
    control. Impressions still waiting in Redis are counted first."""
    return await experiments.results_of(app, experiment_id)


@router.get("/{experiment_id}/timeline")
async def experiment_timeline(experiment_id: ExperimentId, app: AppDep) -> ExperimentTimeline:
    """Each variant's conversion rate over the experiment's life (users by their first
    exposure, converted by the results' rule), in about 48 steps."""
    return await experiments.timeline(app, experiment_id)
