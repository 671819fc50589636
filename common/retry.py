"""Bounded waiting for a backing server at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from common.errors import DependencyError

log = logging.getLogger(__name__)
T = TypeVar("T")


async def wait_for(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    failure: type[DependencyError],
    attempts: int = 10,
    first_delay: float = 0.2,
) -> T:
    """Call `attempt` until it succeeds, backing off; after `attempts` raise `failure`."""
    delay = first_delay
    for n in range(1, attempts + 1):
        try:
            return await attempt()
        except Exception as exc:
            if n == attempts:
                raise failure(f"{what} did not answer after {attempts} attempts: {exc}") from exc
            log.warning("%s not ready (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")
