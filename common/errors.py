"""Domain errors, raised by every layer and mapped to HTTP answers in one place.

    RecsError
    ├── ConfigError                 a setting is missing or malformed (start-up only)
    ├── ClientError                 the request is wrong; nothing was changed   -> 4xx
    │   ├── InvalidInput            422 malformed field, unknown type, bad cursor
    │   ├── UnknownItems            404 single write / 422 batch naming each bad row
    │   ├── NotFound                404
    │   ├── Conflict                409 the thing to create exists already
    │   ├── Unauthorized            401 missing or wrong token
    │   ├── Forbidden               403 role too weak
    │   └── TooManyRequests         429 over a rate limit; carries Retry-After
    └── DependencyError             a backing server failed                     -> 503
        ├── DatabaseUnavailable
        ├── CacheUnavailable
        └── ObjectStoreUnavailable

Adapters translate their library's exceptions where they call the library
(``raise ObjectStoreUnavailable(...) from exc``), so routes never see driver types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RecsError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, details: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details) if details else None


class ConfigError(RecsError):
    code = "invalid_configuration"


class ClientError(RecsError):
    code = "bad_request"
    status = 400


class InvalidInput(ClientError):
    code = "invalid_request"
    status = 422


class TooManySessionItems(ClientError):
    """A session names more items than a session may."""

    code = "too_many_items"


class UnknownItems(ClientError):
    """Interactions that name items the catalog does not hold (or no longer holds)."""

    code = "unknown_item"
    status = 404


class NotFound(ClientError):
    code = "not_found"
    status = 404


class UnknownScenario(NotFound):
    """A request names a scenario that is not stored."""

    code = "unknown_scenario"


class Conflict(ClientError):
    code = "conflict"
    status = 409


class Unauthorized(ClientError):
    code = "unauthorized"
    status = 401


class Forbidden(ClientError):
    code = "forbidden"
    status = 403


class TooManyRequests(ClientError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DependencyError(RecsError):
    code = "dependency_unavailable"
    status = 503


class DatabaseUnavailable(DependencyError):
    code = "database_unavailable"


class CacheUnavailable(DependencyError):
    code = "cache_unavailable"


class ObjectStoreUnavailable(DependencyError):
    code = "object_store_unavailable"


class NotReady(ClientError):
    """Asked for what a job has not finished making (an export's file, say)."""

    code = "not_ready"
    status = 409
