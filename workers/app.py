"""The Celery application: Redis broker, tasks acknowledged only once they finish."""

from __future__ import annotations

from celery import Celery

from common.settings import Settings, get_settings


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
        broker_transport_options={"visibility_timeout": 3600},
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery(get_settings())
