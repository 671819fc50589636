"""What beat runs: the trending refresh and the experiments' tick always, the nightly build
unless turned off."""

from __future__ import annotations

from celery.schedules import crontab

from common.settings import IndexSettings, Settings
from workers.factory import EXPERIMENTS_TASK, NIGHTLY_TASK, TRENDING_TASK, schedule


def test_the_nightly_build_runs_at_its_hour_and_can_be_turned_off() -> None:
    entries = schedule(Settings(index=IndexSettings(nightly_hour=4)))
    assert entries["refresh-trending"]["task"] == TRENDING_TASK
    assert entries["experiments-tick"]["task"] == EXPERIMENTS_TASK
    nightly = entries["nightly-build"]
    assert nightly["task"] == NIGHTLY_TASK
    assert nightly["schedule"] == crontab(minute=0, hour=4)
    off = schedule(Settings(index=IndexSettings(nightly=False)))
    assert set(off) == {"refresh-trending", "experiments-tick"}


def test_the_worker_knows_the_nightly_task(settings: Settings) -> None:
    from workers.app import celery_app
    from workers.tasks import experiments_tick, nightly_build

    assert NIGHTLY_TASK in celery_app.tasks and nightly_build.name == NIGHTLY_TASK
    assert EXPERIMENTS_TASK in celery_app.tasks and experiments_tick.name == EXPERIMENTS_TASK
