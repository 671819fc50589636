"""The error answers of each operation in the OpenAPI document, derived from what its route is.

No route lists its errors by hand: each answer follows from a trait of the route, and each
names the domain error (common/errors.py) or the HTTP refusal (service/api/errors.py) that
gives it, so its status and code are the ones the handlers send.

    under the API prefix      401 (AuthenticateFirst), 429 (rate limits), 503 (tokens are
                              checked against the database; every route reads a store)
    a role above `read`       403
    path parameters           404 (except PUT, which creates what it names), 422
    query or header params    422
    a body                    400 (not JSON), 413 (over the size limit), 422; a batch also
                              422 `batch_too_large`
    RAISES below              what a route's use case refuses that its shape does not show

An error a route declares itself (`responses=` on its decorator) is kept, with the
contract's error body where it gives none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from common.errors import (
    ClientError,
    DependencyError,
    Forbidden,
    InvalidInput,
    NotFound,
    NotReady,
    RecsError,
    TooManyRequests,
    TooManySessionItems,
    Unauthorized,
    UnknownItems,
    UnknownScenario,
)
from common.models import MAX_SESSION_ITEMS, ErrorAnswer, Role
from indexing.filters import InvalidFilter
from service.api.deps import required_role
from service.api.errors import BATCH_TOO_LARGE, INVALID_JSON
from service.api.limits import PayloadTooLarge
from service.auth import RANK
from service.usecases.interactions import UnknownItemsInBatch

ERROR_BODY = "#/components/schemas/ErrorAnswer"


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    why: str

    @classmethod
    def of(cls, error: type[RecsError], why: str) -> Answer:
        return cls(error.status, error.code, why)


# Refused by a route's use case, where nothing in the route's shape shows it.
_NO_SCENARIO = "the scenario named is not stored"
_FILTER_REFUSED = "the filter is malformed or names an unknown field (`details` say where)"
RAISES: dict[tuple[str, str], tuple[Answer, ...]] = {
    ("POST", "/api/v1/recommendations"): (
        Answer.of(InvalidFilter, _FILTER_REFUSED),
        Answer.of(UnknownScenario, _NO_SCENARIO),
        Answer.of(TooManySessionItems, f"more than {MAX_SESSION_ITEMS} items"),
    ),
    ("POST", "/api/v1/search"): (
        Answer.of(InvalidFilter, _FILTER_REFUSED),
        Answer.of(UnknownScenario, _NO_SCENARIO),
    ),
    ("POST", "/api/v1/exports"): (
        Answer.of(InvalidFilter, _FILTER_REFUSED),
        Answer.of(UnknownScenario, _NO_SCENARIO),
    ),
    ("GET", "/api/v1/exports/{export_id}/download"): (
        Answer.of(NotReady, "the export has not succeeded (yet)"),
    ),
    ("POST", "/api/v1/interactions"): (
        Answer.of(UnknownItems, "the interaction names an item the catalog does not hold"),
    ),
    ("POST", "/api/v1/interactions/batch"): (
        Answer.of(UnknownItemsInBatch, "rows name items the catalog does not hold"),
    ),
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _dependency_answers() -> Iterator[Answer]:
    """DependencyError and every error under it: each names the server that failed."""
    seen: list[type[RecsError]] = [DependencyError]
    while seen:
        error = seen.pop(0)
        yield Answer.of(error, "a backing server is unavailable")
        seen.extend(error.__subclasses__())


def answers(
    path: str, method: str, role: Role | None, operation: dict[str, Any], prefix: str
) -> list[Answer]:
    """Every error answer the route at `path` gives to `method`, in status order: `role` is
    the one it requires, `operation` its OpenAPI operation as FastAPI generated it, whose
    parameters and body the route validates."""
    found: list[Answer] = []
    if path.startswith(prefix):
        found.append(Answer.of(Unauthorized, "no token, or one that is not valid"))
        found.append(Answer.of(TooManyRequests, "over a rate limit"))
        found.extend(_dependency_answers())
        if role is not None and RANK[role] > min(RANK.values()):
            found.append(Answer.of(Forbidden, f"the token's role is weaker than {role!r}"))
    where = {parameter["in"] for parameter in operation.get("parameters", [])}
    if "path" in where:
        if method != "PUT":
            found.append(Answer.of(NotFound, "what the path names does not exist"))
        found.append(Answer.of(InvalidInput, "a path parameter is malformed"))
    if where & {"query", "header"}:
        found.append(Answer.of(InvalidInput, "a query or header parameter is malformed"))
    queried = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    if "filter" in queried:
        found.append(Answer.of(InvalidFilter, _FILTER_REFUSED))
    if "scenario" in queried:
        found.append(Answer.of(UnknownScenario, _NO_SCENARIO))
    if "requestBody" in operation:
        found.append(Answer(ClientError.status, INVALID_JSON, "the body is not valid JSON"))
        found.append(Answer.of(ClientError, "the body could not be read"))
        found.append(Answer.of(PayloadTooLarge, "the body is over the size limit"))
        found.append(Answer.of(InvalidInput, "a body field is malformed"))
        if path.endswith("/batch"):
            found.append(Answer(InvalidInput.status, BATCH_TOO_LARGE, "too many rows"))
    found.extend(RAISES.get((method, path), ()))
    return sorted(found, key=lambda answer: answer.status)


def _response(status: int, given: list[Answer]) -> dict[str, Any]:
    """One documented status: its codes and when each is given, with the error body."""
    whys: dict[str, list[str]] = {}
    for answer in given:
        reasons = whys.setdefault(answer.code, [])
        if answer.why not in reasons:
            reasons.append(answer.why)
    # Codes given for the same reasons share a line.
    codes: dict[str, list[str]] = {}
    for code, reasons in whys.items():
        codes.setdefault("; ".join(reasons), []).append(f"`{code}`")
    lines = [f"{', '.join(named)}: {why}" for why, named in codes.items()]
    response: dict[str, Any] = {
        "description": "\n\n".join(lines),
        "content": {"application/json": {"schema": {"$ref": ERROR_BODY}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _document(
    operation: dict[str, Any], path: str, method: str, role: Role | None, prefix: str
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    # FastAPI's own 422 names a body this service never sends.
    if "HTTPValidationError" in str(responses.get("422", "")):
        del responses["422"]
    by_status: dict[int, list[Answer]] = {}
    for answer in answers(path, method, role, operation, prefix):
        by_status.setdefault(answer.status, []).append(answer)
    for status, given in by_status.items():
        responses[str(status)] = _response(status, given)
    if path.startswith(prefix):
        for code, response in responses.items():
            if code[0] in "45" and "content" not in response:
                response["content"] = {"application/json": {"schema": {"$ref": ERROR_BODY}}}
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        # Routing matches a path parameter to a non-empty segment.
        if parameter.get("in") == "path" and schema.get("type") == "string":
            schema.setdefault("minLength", 1)


def document_errors(app: FastAPI, prefix: str) -> None:
    """Declare each operation's error answers in the OpenAPI document, with the contract's
    error body (`ErrorAnswer`); `prefix` is where AuthenticateFirst guards."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        paths = spec.get("paths", {})
        for route in iter_route_contexts(app.routes):
            if isinstance(route.original_route, APIRoute) and route.include_in_schema:
                path = route.path_format or ""
                role = required_role(route.dependencies)
                for method in route.methods or ():
                    _document(paths[path][method.lower()], path, method, role, prefix)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        error_body = ErrorAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_body.pop("$defs", {}))
        schemas["ErrorAnswer"] = error_body
        if "HTTPValidationError" not in str(paths):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
