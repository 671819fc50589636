"""The Celery app workers run: `celery -A workers.app worker` (and `beat`)."""

from __future__ import annotations

from celery import Task
from celery.signals import task_postrun, task_prerun, worker_process_init

from common import tracing
from common.settings import get_settings
from workers.factory import make_celery

celery_app = make_celery(get_settings())
celery_app.conf.include = ["workers.tasks"]


# Traces (common/tracing.py): each worker process exports its own spans; a task continues
# the trace of whatever queued it, carried in its `traceparent` header.
_tasks: dict[str, tracing.Opened | None] = {}


@worker_process_init.connect
def _trace_this_process(**_: object) -> None:
    tracing.configure("recs-worker")


@task_prerun.connect
def _task_begins(task_id: str, task: Task, **_: object) -> None:
    if tracing.on():
        _tasks[task_id] = tracing.begin(f"task {task.name}", task.request.get("traceparent"))


@task_postrun.connect
def _task_ends(task_id: str, **_: object) -> None:
    tracing.end(_tasks.pop(task_id, None))
