"""Adds the console's routes, its static files and its state to the API's app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from common.settings import ApiSettings
from service.console import experiments, keys, lists, ops, scenarios, signin
from service.console.figures import RequestFigures
from service.console.session import Sessions
from service.console.web import HERE, PREFIX


def install(app: FastAPI, settings: ApiSettings) -> None:
    """Serve the console on `app` (its state holds the application and the registry)."""
    app.state.console_sessions = Sessions(settings)
    app.state.console_figures = RequestFigures(app.state.registry)
    for module in (signin, ops, experiments, lists, scenarios, keys):
        app.include_router(module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
