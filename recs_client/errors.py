"""The service's error answers as exceptions: each carries the contract's error `code`, the
HTTP `status`, the `message` and, where the service gives them, `details`."""

from __future__ import annotations

from typing import Any


class RecsError(Exception):
    """An error answer: `{"error": {"code", "message", "details"?}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.retry_after = retry_after


class BadRequest(RecsError):
    """400: a filter, a session or a field the service refused (invalid_filter, ...)."""


class Unauthorized(RecsError):
    """401: no token, or a wrong one."""


class Forbidden(RecsError):
    """403: the key's role may not do this."""


class NotFound(RecsError):
    """404: no such item, user, build, experiment, scenario or export."""


class Conflict(RecsError):
    """409: exists already (conflict), or not finished yet (not_ready)."""


class InvalidRequest(RecsError):
    """422: a malformed field, named in `details`."""


class TooManyRequests(RecsError):
    """429: over a rate limit, after the client's retries; `retry_after` says how long."""


class Unavailable(RecsError):
    """503: a dependency of the service is down, after the client's retries."""


class ServerError(RecsError):
    """Any other 5xx."""


_BY_STATUS: dict[int, type[RecsError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: TooManyRequests,
    503: Unavailable,
}


def error_for(status: int, body: Any, retry_after: float | None) -> RecsError:
    """The exception for an error answer; a body not in the contract's shape still gives
    one, with code `http_<status>`."""
    found = body.get("error") if isinstance(body, dict) else None
    if isinstance(found, dict):
        code = str(found.get("code") or f"http_{status}")
        message = str(found.get("message") or "")
        details = found.get("details") if isinstance(found.get("details"), list) else None
    else:
        code, message, details = f"http_{status}", str(body)[:500], None
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else RecsError)
    return kind(status, code, message, details, retry_after)
