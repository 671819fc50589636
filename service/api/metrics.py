"""Per request: Prometheus metrics labelled by route template (never the raw path), a
request id (the caller's X-Request-ID, or a new one) returned in the answer, and one JSON
log line on the `recs.access` logger: method, route, status, duration, request id and the
caller's key id, never the token."""

from __future__ import annotations

import logging
import re
import time

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import tracing
from common.ids import new_id

access_log = logging.getLogger("recs.access")
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str | None:
    found = scope.get("state", {}).get("request_id")
    return found if isinstance(found, str) else None


class RequestMetrics:
    """ASGI middleware counting requests by route and status, timing them by route, and
    giving each a request id and an access log line."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the last byte of the answer, by route template.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = given.decode() if _REQUEST_ID.match(given) else new_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if tracing.on():
                incoming = dict(scope["headers"]).get(b"traceparent", b"").decode() or None
                with tracing.server_span(scope["method"], incoming) as named:
                    try:
                        await self.app(scope, receive, record_status)
                    finally:
                        route = getattr(scope.get("route"), "path", None) or "unmatched"
                        named(route, status)
            else:
                await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            elapsed = time.perf_counter() - started
            self.requests.labels(template, method, str(status)).inc()
            self.latency.labels(template, method).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                principal = scope["state"].get("principal")
                line = {
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                    "key": getattr(principal, "subject", None),
                }
                access_log.info(orjson.dumps(line).decode())
