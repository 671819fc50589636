"""The gRPC requests as the use cases take them: each proto message read into a model that
checks what the HTTP API checks (ids, limits, filters' length, field names), with the
HTTP defaults where an `optional` field is absent. SearchIn and SessionIn are the HTTP
bodies' own models; the query-string requests have theirs here, from the same types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field

from common.models import (
    ITEM_FIELDS,
    FilterText,
    Id,
    InteractionIn,
    ItemField,
    SearchIn,
    SessionIn,
    Tag,
    Text,
)

Limit = Annotated[int, Field(ge=1, le=200)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecommendIn(_Request):
    user_id: Id
    limit: Limit = 10
    offset: Annotated[int, Field(ge=0, le=10_000)] = 0
    category: Tag | None = None
    filter: FilterText | None = None
    scenario: Tag | None = None
    fields: list[ItemField] | None = Field(default=None, max_length=len(ITEM_FIELDS))
    exclude_seen: bool | None = None
    experiment_id: Annotated[str, Field(max_length=128), Text] | None = None
    explain: bool = False


class SimilarItemsIn(_Request):
    item_id: Id
    limit: Limit = 10
    category: Tag | None = None
    filter: FilterText | None = None
    scenario: Tag | None = None
    fields: list[ItemField] | None = Field(default=None, max_length=len(ITEM_FIELDS))


class TrendingIn(_Request):
    variant: Literal["hot", "rising", "fresh", "viral"] = "hot"
    category: Tag | None = None
    limit: Limit = 10
    window_hours: Annotated[int, Field(ge=1, le=24 * 365)] | None = None
    filter: FilterText | None = None
    fields: list[ItemField] | None = Field(default=None, max_length=len(ITEM_FIELDS))
    scenario: Tag | None = None


def fields_of(message: Message) -> dict[str, Any]:
    """A request message's fields as the HTTP request would carry them: an empty string or
    list and an absent `optional` field are left out (the default applies)."""
    found: dict[str, Any] = {}
    for descriptor in message.DESCRIPTOR.fields:
        name = descriptor.name
        if descriptor.has_presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        if descriptor.is_repeated:
            if len(value):
                found[name] = list(value)
        elif descriptor.type == descriptor.TYPE_STRING and value == "":
            continue
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            continue  # read by the caller where a request has one (session items)
        else:
            found[name] = value
    return found


def session_of(message: Any) -> SessionIn:
    """RecommendSession's request as the HTTP body's model (a plain view is just an id)."""
    body = fields_of(message)
    body["items"] = [
        {"item_id": item.item_id, "type": item.type} if item.type else item.item_id
        for item in message.items
    ]
    return SessionIn.model_validate(body)


def search_of(message: Any) -> SearchIn:
    return SearchIn.model_validate(fields_of(message))


def interaction_of(message: Any) -> InteractionIn:
    body = fields_of(message)
    if message.HasField("timestamp"):
        body["timestamp"] = message.timestamp.ToDatetime().isoformat() + "Z"
    return InteractionIn.model_validate(body)
