"""The two reads most requests are, asked plainly, answered ahead of FastAPI's routing.

A user's list and an item's similar items are usually lookups of lists ranked ahead. For such
a request FastAPI's own work outweighed the route's: under py-spy at 100,000 items, solving
the parameters took 20% of the API process's samples on similar-items requests and the route
13%, and routing, the exception and exit-stack layers and the response's validation more.

This middleware takes a request only when every part of it is one the route accepts as sent:
a GET of one of the two paths, an id that the route's own validator passes, no query
parameter but `limit` (and, for a list, `offset`) as a plain integer within the route's
bounds, headers the route accepts, and a caller with the read role. It then calls the route's own
function, so the answer is the route's. Anything else (another parameter, a value the route
would refuse, a key without the role) goes on to FastAPI, which answers it as it always has.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from common.errors import RecsError
from service.api.errors import error_for, unexpected_error
from service.api.routes import API, recommendations
from service.auth import Principal

_ID: TypeAdapter[str] = TypeAdapter(recommendations.Id)
_NUMBER = re.compile(rb"^[0-9]{1,5}$")


def _route(path: str) -> APIRoute:
    """The route object routing would select, which the metrics read the template of."""
    for route in recommendations.router.routes:
        if isinstance(route, APIRoute) and route.path == path and "GET" in (route.methods or ()):
            return route
    raise LookupError(f"no GET route {path}")


class _Lookup:
    """One route taken here: its path, the parameters it reads and their bounds."""

    def __init__(
        self,
        template: str,
        bounds: dict[bytes, tuple[int, int]],
        answer: Callable[[str, Any, dict[str, int], str | None], Awaitable[BaseModel]],
    ) -> None:
        self.template = template
        head, _, tail = (API + template).partition("{")
        self.prefix, self.suffix = head, tail.partition("}")[2]
        self.bounds = bounds
        self.answer = answer
        self.route = _route(API + template)

    def path_id(self, path: str) -> str | None:
        """The id in `path`, where the path is this route's (one segment, as routing has it)."""
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return None
        found = path[len(self.prefix) : len(path) - len(self.suffix)]
        return found if found and "/" not in found else None

    def numbers(self, query: bytes) -> dict[str, int] | None:
        """The query's parameters, where each is one of ours, once, a plain integer in
        bounds; None otherwise (FastAPI answers or refuses it)."""
        found: dict[str, int] = {}
        if not query:
            return found
        for part in query.split(b"&"):
            name, equals, value = part.partition(b"=")
            bounds = self.bounds.get(name)
            if bounds is None or not equals or not _NUMBER.match(value):
                return None
            number = int(value)
            key = name.decode()
            if key in found or not bounds[0] <= number <= bounds[1]:
                return None
            found[key] = number
        return found


async def _similar(
    item_id: str, res: Any, numbers: dict[str, int], _cache_control: str | None
) -> BaseModel:
    return await recommendations.similar_items(item_id, res, numbers.get("limit", 10), None)


async def _list(
    user_id: str, res: Any, numbers: dict[str, int], cache_control: str | None
) -> BaseModel:
    query = recommendations.ListQuery(**numbers)
    return await recommendations.recommend(user_id, res, query, cache_control)


LIMIT = (1, 200)
LOOKUPS = (
    _Lookup("/items/{item_id}/similar", {b"limit": LIMIT}, _similar),
    _Lookup("/recommendations/{user_id}", {b"limit": LIMIT, b"offset": (0, 10_000)}, _list),
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
        lookup, found_id, numbers, cache_control = taken
        scope["route"] = lookup.route  # the metrics label the route as routing would
        resources = scope["app"].state.resources
        try:
            model = await lookup.answer(found_id, resources, numbers, cache_control)
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

    def _taken(self, scope: Scope) -> tuple[_Lookup, str, dict[str, int], str | None] | None:
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
            numbers = lookup.numbers(scope.get("query_string", b""))
            if numbers is None:
                return None
            # The list route reads Cache-Control (up to 256 characters, as one header).
            given = [value for name, value in scope["headers"] if name == b"cache-control"]
            if len(given) > 1 or (given and len(given[0]) > 256):
                return None
            try:
                cache_control = given[0].decode("latin-1") if given else None
                return lookup, _ID.validate_python(raw_id), numbers, cache_control
            except ValidationError:
                return None
        return None
