"""What routes are handed: the application and the caller.

Route signatures stay one line each through the `...Dep` aliases.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, params
from fastapi.routing import APIRoute

from common.models import Role
from service.application import Application
from service.auth import RANK, Principal


# Dependencies are `async def` even where they do not await: FastAPI runs plain functions in
# a thread pool, and that hand-off costs more than these whole functions.
def _application(request: Request) -> Application:
    found: Application = request.app.state.application
    return found


async def application(request: Request) -> Application:
    return _application(request)


async def _principal(request: Request) -> Principal:
    """The caller AuthenticateFirst resolved before the body was read."""
    found = request.scope.get("state", {}).get("principal")
    if isinstance(found, Principal):
        return found
    return await _application(request).auth.principal(request.headers.get("authorization"))


def require(role: Role) -> params.Depends:
    """The one dependency that guards every /api/v1 route: one call, no sub-dependencies
    (each level of FastAPI's dependency solving costs a cheap answer a few percent). A
    `Guarded` route checks the same role before its body is read."""

    async def check(request: Request) -> Principal:
        principal = await _principal(request)
        principal.require(role)
        return principal

    check.role = role  # type: ignore[attr-defined]  # read by `required_role`
    guard: params.Depends = Depends(check)
    return guard


def required_role(dependencies: Iterable[params.Depends]) -> Role | None:
    """The strongest role that `require` guards among `dependencies` ask for (a router's
    and a route's own); None where there is none."""
    roles: list[Role] = [
        role
        for dependency in dependencies
        if (role := getattr(dependency.dependency, "role", None)) is not None
    ]
    return max(roles, key=RANK.__getitem__, default=None)


class Guarded(APIRoute):
    """A route whose caller's role is checked before anything reads its body.

    FastAPI parses a route's JSON body before it runs the route's dependencies, so a `read`
    key posting bad JSON to a write route would otherwise hear of its JSON (400) rather
    than of its role (403). The caller was resolved before the body too (AuthenticateFirst):
    a refused request never has a byte of its body read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        role = required_role(self.dependencies)
        if role is None:
            return handle
        needed: Role = role

        async def guarded(request: Request) -> Response:
            (await _principal(request)).require(needed)
            return await handle(request)

        return guarded


BEARER = "HTTPBearer"


def document_security(app: FastAPI, prefix: str) -> None:
    """Declare the bearer scheme on every operation under `prefix` in the OpenAPI document.
    The token itself is resolved by AuthenticateFirst before the body is read, so no route
    declares it as a dependency of its own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key or an HS256 JWT.",
        }
        for path, operations in spec.get("paths", {}).items():
            if path.startswith(prefix):
                for operation in operations.values():
                    operation["security"] = [{BEARER: []}]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


AppDep = Annotated[Application, Depends(application)]
