"""Rate limits: per API key by kind of route, per client address across keys, and per address
for requests whose token is missing or wrong. Counts live in Redis (storage/rates.py), so
every API process shares them.

A limit is a sliding minute: this minute's count plus the previous minute's, weighted by how
much of it still lies within the last 60 seconds. Over a limit the answer is 429 with
Retry-After, counted in /metrics. When Redis cannot count, requests go through unlimited
(logged), and the limiter waits a few seconds before asking again: a limit must not turn a
cache outage into an API outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from common.errors import DependencyError, TooManyRequests
from common.settings import RateSettings
from service.auth import Principal
from storage import rates

log = logging.getLogger(__name__)
# Longer than this and a count is skipped: a hung Redis must not slow every request down.
COUNT_SECONDS = 0.25
PAUSE_SECONDS = 5.0
_WHAT = {
    "read": "read requests per key",
    "write": "write requests per key",
    "search": "searches per key",
    "build": "build requests per key",
    "address": "requests per client address",
    "failed_auth": "requests with a missing or wrong token per client address",
}


def route_kind(method: str, path: str) -> str:
    """Which per-key limit a request counts against."""
    if method == "POST" and path.endswith("/search"):
        return "search"
    if method == "POST" and path.endswith("/index/builds"):
        return "build"
    return "read" if method in ("GET", "HEAD") else "write"


def estimate(current: int, previous: int, into_minute: float) -> float:
    """Requests in the last 60 s, assuming the previous minute's were spread evenly."""
    return current + previous * (1.0 - into_minute / rates.WINDOW)


def wait_seconds(current: int, previous: int, into_minute: float, limit: int) -> int:
    """Seconds until the sliding estimate is back under `limit` (at least 1)."""
    if current >= limit:  # only the next minute frees room
        return max(1, math.ceil(rates.WINDOW - into_minute))
    # previous * (1 - t / 60) + current < limit  <=>  t > 60 * (1 - (limit - current) / previous)
    free_at = rates.WINDOW * (1.0 - (limit - current) / previous)
    return max(1, math.ceil(free_at - into_minute))


class RateLimiter:
    def __init__(
        self, settings: RateSettings, redis: Redis, namespace: str, registry: CollectorRegistry
    ) -> None:
        self.settings, self.redis, self.namespace = settings, redis, namespace
        self.refused = Counter(
            "recs_rate_limited_total",
            "Requests refused with 429, by the limit they were over.",
            ["limit"],
            registry=registry,
        )
        # Addresses over the failed-token limit, known to this process: their requests are
        # refused before any token is checked, until the minute is over.
        self._blocked: dict[str, float] = {}
        self._paused_until = 0.0

    def blocked(self, address: str) -> None:
        """Refuse an address that keeps sending wrong tokens, before its token is looked at."""
        until = self._blocked.get(address)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return
        self.refused.labels("failed_auth").inc()
        raise TooManyRequests(
            "too many requests with a missing or wrong token from this address",
            retry_after=max(1, math.ceil(left)),
        )

    async def failed(self, address: str) -> None:
        """Count a request whose token was refused; raise once the address is over."""
        limit = self.settings.failed_auth_per_minute
        if not self.settings.enabled or not limit:
            return
        key = rates.rate_key(self.namespace, "failed_auth", address)
        refused = await self._check([(key, limit, "failed_auth")])
        if refused is not None:
            if len(self._blocked) > 10_000:
                self._blocked.clear()
            self._blocked[address] = time.monotonic() + refused.retry_after
            raise refused

    async def admit(self, principal: Principal, address: str, method: str, path: str) -> None:
        """Count a request of an authenticated caller; raise TooManyRequests when over."""
        if not self.settings.enabled or principal.role == "admin":
            return
        kind = route_kind(method, path)
        limits = [
            (
                rates.rate_key(self.namespace, kind, principal.subject),
                getattr(self.settings, f"{kind}_per_minute"),
                kind,
            ),
            (
                rates.rate_key(self.namespace, "address", address),
                self.settings.address_per_minute,
                "address",
            ),
        ]
        refused = await self._check([entry for entry in limits if entry[1] > 0])
        if refused is not None:
            raise refused

    async def _check(self, limits: list[tuple[str, int, str]]) -> TooManyRequests | None:
        if not limits or time.monotonic() < self._paused_until:
            return None
        now = time.time()
        minute, into = divmod(now, rates.WINDOW)
        try:
            counts = await asyncio.wait_for(
                rates.count(self.redis, [key for key, _, _ in limits], int(minute)), COUNT_SECONDS
            )
        except (DependencyError, TimeoutError) as exc:
            self._paused_until = time.monotonic() + PAUSE_SECONDS
            log.warning("rate limits not counted for %.0f s: %s", PAUSE_SECONDS, exc)
            return None
        for (_, limit, name), (current, previous) in zip(limits, counts, strict=True):
            # This request is counted in `current`; it is over when the others already were.
            if estimate(current - 1, previous, into) >= limit:
                self.refused.labels(name).inc()
                return TooManyRequests(
                    f"over the limit of {limit} {_WHAT[name]} a minute",
                    retry_after=wait_seconds(current - 1, previous, into, limit),
                )
        return None
