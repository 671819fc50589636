"""The Celery application for given settings: Redis broker, tasks acknowledged only once done.

The API makes one to queue tasks; workers/app.py makes the one workers run.
"""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab

from common.settings import Settings

BUILD_TASK = "recs.build_index"
EMBED_TASK = "recs.embed_items"
TRENDING_TASK = "recs.refresh_trending"
NIGHTLY_TASK = "recs.nightly_build"
EXPERIMENTS_TASK = "recs.experiments_tick"
FILL_TASK = "recs.fill_lists"
EXPORT_TASK = "recs.export_lists"


def make_celery(settings: Settings) -> Celery:
    app = Celery("recs", broker=settings.redis.url)
    app.conf.update(
        # A task whose worker dies mid-run is delivered again rather than lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.index.build_time_limit + 600},
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
        beat_schedule=schedule(settings),
    )
    return app


def schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """What beat runs: the trending refresh, the experiments' tick, and the nightly build
    unless turned off."""
    entries: dict[str, dict[str, object]] = {
        "refresh-trending": {
            "task": TRENDING_TASK,
            "schedule": settings.index.trending_refresh_seconds,
        },
        "experiments-tick": {
            "task": EXPERIMENTS_TASK,
            "schedule": settings.experiment.tick_seconds,
        },
    }
    if settings.index.nightly:
        entries["nightly-build"] = {
            "task": NIGHTLY_TASK,
            "schedule": crontab(minute=0, hour=settings.index.nightly_hour),
        }
    return entries
