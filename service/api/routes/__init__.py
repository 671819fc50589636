"""One module per resource. Routers carry their full path, so route templates (used as metric
labels) read as clients see them."""

from __future__ import annotations

from typing import Any

from common.models import ErrorAnswer

API = "/api/v1"


def _answer(description: str) -> dict[str, Any]:
    return {"model": ErrorAnswer, "description": description}


# The error answers every /api/v1 route can give, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: _answer("no token, or one that is not valid"),
    403: _answer("the token's role is too weak for this route"),
    413: _answer("the body is over the route's limit"),
    422: _answer("a field is malformed; `details` names each"),
    429: _answer("over a rate limit; Retry-After says in how many seconds to try again"),
    503: _answer("a backing server (database, cache, object store) is unavailable"),
}
