"""One module per resource. Routers carry their full path, so route templates (used as metric
labels) read as clients see them."""

from __future__ import annotations

from typing import Any

API = "/api/v1"

# Error answers a whole router gives beyond those each route's shape implies: none. Every
# operation's errors are derived when the app is assembled (service/api/error_answers.py).
ERRORS: dict[int | str, dict[str, Any]] = {}
