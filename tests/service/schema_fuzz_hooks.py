"""Schemathesis hooks for tests/service/test_schema_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Every check runs on every operation. The failures dropped here are the refusals of requests
that JSON Schema holds valid but the contract refuses for what no schema keyword can say: the
state of the service, the clock, or a rule across several fields. Each is matched by its check,
its operation and the exact refusal, so the same check still fails on anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from schemathesis import Case, Response
from schemathesis.core.failures import Failure
from schemathesis.hooks import HookContext

# Schema-valid data refused (positive_data_acceptance).
REJECTED = "ST202"
# `Allow` on an OPTIONS answer differs from the operation's path in the schema.
ALLOW_MISMATCH = "ST205"


def _error(response: Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body.get("error", {}) if isinstance(body, dict) else {}


def _messages(response: Response) -> list[str]:
    error = _error(response)
    return [detail.get("message", "") for detail in error.get("details") or []] or [
        error.get("message", "")
    ]


def _unknown_items_in_a_batch(case: Case, response: Response) -> bool:
    # API.md, Users and interactions: "an unknown item_id is a 404 for the single call and is
    # reported per row for the batch". Generated rows name items the catalog does not hold.
    return case.path == "/api/v1/interactions/batch" and _error(response).get("code") == (
        "unknown_item"
    )


def _a_cursor_not_issued(case: Case, response: Response) -> bool:
    # API.md, Catalog and history: `cursor` is the `next_cursor` of an earlier page, opaque
    # to clients; one made up is refused.
    paged = ("/api/v1/items", "/api/v1/users/{user_id}/interactions", "/api/v1/index/builds")
    return case.path in paged and _messages(response) == ["cursor is not one this service issued"]


def _variants_across_rows(case: Case, response: Response) -> bool:
    # ExperimentIn's description: variant names are unique and exactly one is the control.
    # JSON Schema's uniqueItems compares whole variants, not one field of each.
    rules = ("Value error, variant names must be unique", "Value error, exactly one variant")
    return case.path == "/api/v1/experiments" and all(
        message.startswith(rules) for message in _messages(response)
    )


def _a_version_not_kept(case: Case, response: Response) -> bool:
    # The schema of `params.index_version`: a variant pins a kept version; none is kept here.
    return case.path == "/api/v1/experiments" and all(
        message.startswith("no version ") for message in _messages(response)
    )


def _a_time_ahead_of_the_clock(case: Case, response: Response) -> bool:
    # InteractionIn's description: a timestamp more than five minutes ahead of the service's
    # clock is refused; a schema cannot name the time it is read.
    return case.path.startswith("/api/v1/interactions") and all(
        message.endswith("timestamp is in the future") for message in _messages(response)
    )


def _a_filter_outside_the_grammar(case: Case, response: Response) -> bool:
    # API.md, Business rules: `filter` is an expression in the contract's grammar, which no
    # JSON Schema keyword states; one outside it is a 400 naming where.
    return _error(response).get("code") == "invalid_filter"


def _batch_is_also_an_item_id(case: Case, response: Response) -> bool:
    # API.md: ids are any 1 to 128 characters without '/' or control characters, so
    # /api/v1/items/batch is also /api/v1/items/{item_id} for the item "batch" (and so is
    # /api/v1/items/delete), and `Allow`
    # rightly lists that path's methods too. The check compares with one path's alone.
    paths = ("/api/v1/items/batch", "/api/v1/items/delete")
    return case.path in paths and response.headers.get("allow") == ["GET, POST, PUT, DELETE"]


EXCUSED: dict[str, tuple[Callable[[Case, Response], bool], ...]] = {
    REJECTED: (
        _unknown_items_in_a_batch,
        _a_cursor_not_issued,
        _variants_across_rows,
        _a_version_not_kept,
        _a_time_ahead_of_the_clock,
        _a_filter_outside_the_grammar,
    ),
    ALLOW_MISMATCH: (_batch_is_also_an_item_id,),
}


@schemathesis.hook
def filter_failure(context: HookContext, failure: Failure, case: Case, response: Response) -> bool:
    """Keep every failure but the excused ones."""
    return not any(excused(case, response) for excused in EXCUSED.get(failure.code, ()))
