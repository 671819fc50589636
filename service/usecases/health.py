"""Readiness: whether the database, the cache and the object store answer, and the version
this process serves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from service.application import Application
from storage import cache, db

CHECK_SECONDS = 2.0


async def readiness(app: Application) -> dict[str, Any]:
    """`status` is "ready", "degraded" (only the object store is down and a version is
    loaded: every answer still comes) or "unavailable"; `checks` says each server's state."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "database": lambda: db.ping(app.pool),
        "cache": lambda: cache.ping(app.redis),
        "object_store": app.store_probe.ping,
    }
    outcomes = await asyncio.gather(*(_probe(check) for check in checks.values()))
    results = dict(zip(checks, outcomes, strict=True))
    failed = {name for name, outcome in results.items() if outcome != "ok"}
    # S3 only supplies new versions: with one loaded, the process still answers everything.
    degraded = failed == {"object_store"} and app.serving.current is not None
    return {
        "status": "ready" if not failed else "degraded" if degraded else "unavailable",
        "checks": results,
        "index_version": app.serving.current.version if app.serving.current else None,
    }


async def _probe(check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_SECONDS:.0f}s"
    except Exception as exc:
        return f"error: {exc}"
    return "ok"
