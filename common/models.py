"""The shapes that cross the HTTP boundary, validated once on the way in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_BATCH = 10_000
# Clocks differ: a timestamp this far ahead of ours is still taken as now-ish.
FUTURE_TOLERANCE = timedelta(minutes=5)


def _aware(value: datetime | None) -> datetime | None:
    """Timestamps without a zone are taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Timestamp = Annotated[datetime, AfterValidator(_aware)]
Role = Literal["read", "write", "admin"]


class _In(BaseModel):
    # Unknown fields are refused: a misspelt `tag` should not silently vanish.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemFields(_In):
    title: Annotated[str, StringConstraints(min_length=1, max_length=1_000)]
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    tags: Annotated[list[Tag], Field(max_length=100)] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    published_at: Timestamp | None = None


class ItemIn(ItemFields):
    item_id: Id


class ItemBatch(_In):
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=MAX_BATCH)]


class Item(BaseModel):
    item_id: str
    title: str
    description: str | None
    category: str | None
    tags: list[str]
    attributes: dict[str, Any]
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[Item]
    next_cursor: str | None


class Upserted(BaseModel):
    upserted: int


class UserFields(_In):
    attributes: dict[str, Any] = Field(default_factory=dict)


class User(BaseModel):
    user_id: str
    attributes: dict[str, Any]
    interaction_count: int
    last_interaction_at: datetime | None
    created_at: datetime
    updated_at: datetime


class InteractionIn(_In):
    user_id: Id
    item_id: Id
    type: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    value: Annotated[float, Field(allow_inf_nan=False)] | None = None
    timestamp: Timestamp | None = None
    event_id: Id | None = None

    def problem(self, types: frozenset[str], now: datetime) -> str | None:
        """What is wrong with this interaction given the configured types, or None."""
        if self.type not in types:
            return f"type {self.type!r} is not one of {', '.join(sorted(types))}"
        if self.type == "rating" and (self.value is None or not 1 <= self.value <= 5):
            return "a rating needs a value from 1 to 5"
        if self.timestamp is not None and self.timestamp > now + FUTURE_TOLERANCE:
            return "timestamp is in the future"
        return None


class InteractionBatch(_In):
    interactions: Annotated[list[InteractionIn], Field(min_length=1, max_length=MAX_BATCH)]


class Accepted(BaseModel):
    accepted: int
    duplicates: int


class ApiKeyIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    role: Role


class ApiKey(BaseModel):
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


class NewApiKey(ApiKey):
    token: str = Field(description="The bearer token; shown once, stored only as a hash.")


class ApiKeyList(BaseModel):
    keys: list[ApiKey]


class Scored(BaseModel):
    item_id: str
    score: float
    # Present only when explanations were asked for.
    reasons: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)


class Recommendations(BaseModel):
    user_id: str
    items: list[Scored]
    index_version: int | None
    strategy: str
    variant: str | None = None
    cached: bool


class SimilarItems(BaseModel):
    item_id: str
    items: list[Scored]
    index_version: int | None


class TrendingList(BaseModel):
    variant: str
    category: str | None
    window_hours: int
    items: list[Scored]


class SimilarUser(BaseModel):
    user_id: str
    similarity: float


class SimilarUsers(BaseModel):
    user_id: str
    users: list[SimilarUser]
    index_version: int | None


class SearchIn(_In):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
    limit: Annotated[int, Field(ge=1, le=200)] = 10
    category: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class SearchResults(BaseModel):
    items: list[Scored]
    index_version: int | None


class Explanation(BaseModel):
    user_id: str
    item_id: str
    score: float
    rank: int | None
    components: dict[str, float | None]
    reasons: list[str]
    index_version: int | None


class BuildIn(_In):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    force: bool = False
    activate: bool = True


class Build(BaseModel):
    build_id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    stage: str
    error: str | None = None
    version: int | None = None
    reason: str | None = None
    force: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class VersionSummary(BaseModel):
    version: int
    created_at: datetime
    items: int
    users: int
    metrics: dict[str, Any]
    state: str
    active: bool


class VersionList(BaseModel):
    active: int | None
    versions: list[VersionSummary]


class VersionDetail(VersionSummary):
    manifest: dict[str, Any]


class Activated(BaseModel):
    active: int
