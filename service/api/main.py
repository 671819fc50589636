"""Assembles the HTTP app: the application (service/application.py) for its lifespan,
middleware, error handling, routes."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from common import tracing
from common.settings import Settings, get_settings
from service.api import errors
from service.api.body import document_bodies
from service.api.deps import document_security
from service.api.error_answers import document_errors
from service.api.limits import AuthenticateFirst, BodyLimit
from service.api.lookups import Lookups
from service.api.metrics import RequestMetrics, access_log
from service.api.routes import (
    API,
    events,
    experiments,
    exports,
    health,
    index,
    items,
    keys,
    recommendations,
    scenarios,
    users,
)
from service.api.variant_params import document_variant_params
from service.application import close_application, open_application
from service.console.mount import install as install_console
from service.grpc.server import GrpcDoor

log = logging.getLogger(__name__)


def _access_log(enabled: bool) -> None:
    """The access lines go to stderr as they are: each is already one JSON object."""
    access_log.setLevel(logging.INFO if enabled else logging.WARNING)
    if enabled and not access_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing.configure("recs-api")  # where OTEL_EXPORTER_OTLP_ENDPOINT is set

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.application = await open_application(settings, app.state.registry)
        door = None
        try:
            if settings.api.grpc_port:
                # gRPC in this process: the same application, version and caches as HTTP.
                door = GrpcDoor(app.state.application, settings.api.grpc_port, settings.api.host)
                await door.start()
                app.state.grpc = door
            yield
        finally:
            if door is not None:
                await door.stop(settings.api.grpc_grace_seconds)
            await close_application(app.state.application)

    app = FastAPI(
        title="recs",
        version="0.1.0",
        summary="Similar items, personalised recommendations and trending lists "
        "from versioned vector indexes.",
        lifespan=lifespan,
    )
    app.state.registry = CollectorRegistry()
    _access_log(settings.api.access_log)
    errors.install(app)
    # The last added runs first: metrics, then the size limit, then the token, then the
    # lookups that need no routing.
    app.add_middleware(Lookups)
    app.add_middleware(AuthenticateFirst, prefix=API + "/")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.api.body_limit_bytes,
        batch_bytes=settings.api.max_body_bytes,
    )
    app.add_middleware(RequestMetrics, registry=app.state.registry)
    for module in (
        health,
        recommendations,
        items,
        users,
        keys,
        index,
        experiments,
        scenarios,
        exports,
        events,
    ):
        app.include_router(module.router)
    install_console(app, settings.api)
    document_bodies(
        app,
        {
            ("InteractionIn", "type"): sorted(settings.interactions.types),
            # A session's item has no value, so no rating.
            ("SessionItemIn", "type"): sorted(settings.interactions.interaction_weights),
        },
    )
    document_variant_params(app)
    document_security(app, API + "/")
    document_errors(app, API + "/")
    return app
