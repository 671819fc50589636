"""Every error leaves as `{"error": {"code", "message", "details"?}}`, from this one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from common.errors import RecsError, TooManyRequests

log = logging.getLogger(__name__)

# The codes of the refusals no domain error raises: request parsing's, and routing's.
INVALID_JSON = "invalid_json"
BATCH_TOO_LARGE = "batch_too_large"
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": body}, status_code=status, headers=headers or None)


def error_for(exc: RecsError) -> JSONResponse:
    """The answer a domain error gets, with Retry-After when it says when to come back."""
    if exc.status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


def _location(loc: tuple[Any, ...]) -> str:
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def _validation(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    details = [
        {"field": _location(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
        for e in errors[:100]
    ]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(400, INVALID_JSON, "the body is not valid JSON", details)
    if [e["loc"] for e in errors] == [("body",)] and errors[0]["type"] == "model_attributes_type":
        return error_response(
            422, "invalid_request", "the body must be a JSON object sent as application/json"
        )
    too_long = [e for e in errors if e["type"] == "too_long" and len(e["loc"]) == 2]
    if too_long:
        return error_response(
            422, BATCH_TOO_LARGE, f"{_location(tuple(too_long[0]['loc']))}: {too_long[0]['msg']}"
        )
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(
        422, "invalid_request", f"{first['field']}: {first['message']}{more}", details
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(RecsError)
    async def domain(_: Request, exc: RecsError) -> JSONResponse:
        return error_for(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation(exc)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Routing names only the methods of the first route whose path matched.
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return unexpected_error(exc)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: Starlette, scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's, for `Allow`."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.router.routes):
        if route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    order = {method: n for n, method in enumerate(_METHOD_ORDER)}
    return sorted(methods, key=lambda method: (order.get(method, len(order)), method))


def unexpected_error(exc: Exception) -> JSONResponse:
    """The answer to a failure nothing above names: logged whole, told briefly."""
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "the service failed; see its log")
