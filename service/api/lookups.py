"""The two reads most requests are, asked plainly, answered ahead of FastAPI's routing.

A user's list and an item's similar items are usually lookups of lists ranked ahead. For such
a request FastAPI's own work outweighed the route's: under py-spy at 100,000 items, solving
the parameters took 20% of the API process's samples on similar-items requests and the route
13%, and routing, the exception and exit-stack layers and the response's validation more.

This middleware takes a request only when every part of it is one the route accepts as sent:
a GET of one of the two paths, an id that the route's own validator passes, query parameters
that are the route's own, each given once and valid by the route's own types (read as
Starlette reads a query string), headers the route accepts, and a caller with the read role.
It then calls the route's use case (service/usecases/) with the same arguments the route
would give it, so the answer is the route's. Anything else (an
unknown or repeated parameter, a value the route would refuse, a key without the role) goes
on to FastAPI, which answers it as it always has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from common.errors import RecsError
from service.api.errors import error_for, unexpected_error
from service.api.routes import API, recommendations
from service.application import Application
from service.auth import Principal
from service.usecases import similar
from service.usecases.user_list import user_list

_ID: TypeAdapter[str] = TypeAdapter(recommendations.Id)
# What a lookup answers with: the route's use case, given the validated id, the application,
# the query's values and the Cache-Control header.
Answer = Callable[[str, Application, dict[str, Any], str | None], Awaitable[BaseModel]]


def _route(path: str) -> APIRoute:
    """The route object routing would select, which the metrics read the template of."""
    for route in recommendations.router.routes:
        if isinstance(route, APIRoute) and route.path == path and "GET" in (route.methods or ()):
            return route
    raise LookupError(f"no GET route {path}")


class _Lookup:
    """One route taken here: its path, the check of its query, and its function."""

    def __init__(
        self,
        template: str,
        names: frozenset[str],
        query: Callable[[dict[str, str]], dict[str, Any]],
        answer: Answer,
    ) -> None:
        head, _, tail = (API + template).partition("{")
        self.prefix, self.suffix = head, tail.partition("}")[2]
        self.names = names
        self.query = query
        self.answer = answer
        self.route = _route(API + template)

    def path_id(self, path: str) -> str | None:
        """The id in `path`, where the path is this route's (one segment, as routing has it)."""
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return None
        found = path[len(self.prefix) : len(path) - len(self.suffix)]
        return found if found and "/" not in found else None

    def values(self, query_string: bytes) -> dict[str, Any] | None:
        """The query's values, read as Starlette reads them and validated by the route's
        own types; None where a name is not the route's, comes twice, or a value fails
        (FastAPI answers or refuses those)."""
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        given = dict(pairs)
        if len(given) < len(pairs) or not given.keys() <= self.names:
            return None
        try:
            return self.query(given)
        except ValidationError:
            return None


_LIMIT: TypeAdapter[int] = TypeAdapter(recommendations.Limit)
_CATEGORY: TypeAdapter[str | None] = TypeAdapter(recommendations.Category)


def _similar_query(given: dict[str, str]) -> dict[str, Any]:
    # As in FastAPI, a default is taken as it is, not validated.
    limit, category = given.get("limit"), given.get("category")
    return {
        "limit": recommendations.SIMILAR_LIMIT if limit is None else _LIMIT.validate_python(limit),
        "category": None if category is None else _CATEGORY.validate_python(category),
    }


def _list_query(given: dict[str, str]) -> dict[str, Any]:
    return {"query": recommendations.ListQuery.model_validate(given)}


async def _similar(
    item_id: str, app: Application, values: dict[str, Any], _cache_control: str | None
) -> BaseModel:
    return await similar.similar_items(app, item_id, values["limit"], values["category"])


async def _list(
    user_id: str, app: Application, values: dict[str, Any], cache_control: str | None
) -> BaseModel:
    return await user_list(app, values["query"].request(user_id, cache_control))


LOOKUPS = (
    _Lookup("/items/{item_id}/similar", frozenset({"limit", "category"}), _similar_query, _similar),
    _Lookup(
        "/recommendations/{user_id}",
        frozenset(recommendations.ListQuery.model_fields),
        _list_query,
        _list,
    ),
)


class Lookups:
    """Runs after AuthenticateFirst, which leaves the caller in the request's state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = self._taken(scope) if scope["type"] == "http" else None
        if taken is None:
            await self.app(scope, receive, send)
            return
        lookup, found_id, values, cache_control = taken
        scope["route"] = lookup.route  # the metrics label the route as routing would
        application = scope["app"].state.application
        try:
            model = await lookup.answer(found_id, application, values, cache_control)
        except RecsError as exc:
            await error_for(exc)(scope, receive, send)
            return
        except Exception as exc:
            await unexpected_error(exc)(scope, receive, send)
            return
        body = model.__pydantic_serializer__.to_json(model)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _taken(self, scope: Scope) -> tuple[_Lookup, str, dict[str, Any], str | None] | None:
        if scope["method"] != "GET":
            return None
        principal = scope.get("state", {}).get("principal")
        if not isinstance(principal, Principal) or scope.get("root_path"):
            return None
        try:
            principal.require("read")
        except RecsError:
            return None
        path = scope["path"]
        for lookup in LOOKUPS:
            raw_id = lookup.path_id(path)
            if raw_id is None:
                continue
            values = lookup.values(scope.get("query_string", b""))
            if values is None:
                return None
            # The list route reads Cache-Control (up to 256 characters, as one header).
            given = [value for name, value in scope["headers"] if name == b"cache-control"]
            if len(given) > 1 or (given and len(given[0]) > 256):
                return None
            try:
                cache_control = given[0].decode("latin-1") if given else None
                return lookup, _ID.validate_python(raw_id), values, cache_control
            except ValidationError:
                return None
        return None
