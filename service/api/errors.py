"""Every error leaves as `{"error": {"code", "message", "details"?}}`, from this one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from common.errors import RecsError, TooManyRequests

log = logging.getLogger(__name__)

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
        return error_response(400, "invalid_json", "the body is not valid JSON", details)
    if [e["loc"] for e in errors] == [("body",)] and errors[0]["type"] == "model_attributes_type":
        return error_response(
            422, "invalid_request", "the body must be a JSON object sent as application/json"
        )
    too_long = [e for e in errors if e["type"] == "too_long" and len(e["loc"]) == 2]
    if too_long:
        return error_response(
            422, "batch_too_large", f"{_location(tuple(too_long[0]['loc']))}: {too_long[0]['msg']}"
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
    async def http(_: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return unexpected_error(exc)


def unexpected_error(exc: Exception) -> JSONResponse:
    """The answer to a failure nothing above names: logged whole, told briefly."""
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "the service failed; see its log")
