"""The Celery app workers run: `celery -A workers.app worker` (and `beat`)."""

from __future__ import annotations

from common.settings import get_settings
from workers.factory import make_celery

celery_app = make_celery(get_settings())
celery_app.conf.include = ["workers.tasks"]
