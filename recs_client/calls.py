"""Every route of the HTTP contract as a `Call`: method, path, query and body, and the type of
its answer. The sync and async clients send the same calls (recs_client/client.py), so a
route is described once.

Answers are the service's JSON as typed dicts: fields the service adds later pass through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar
from urllib.parse import quote

T = TypeVar("T")
API = "/api/v1"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request. `params` with None values are left out; an answer with no body (204)
    is None."""

    method: Literal["GET", "PUT", "POST", "DELETE"]
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None


def _id(value: str) -> str:
    """An id as one path segment (ids may hold spaces, '?', '#', ...; never '/')."""
    return quote(value, safe="")


def _fields(names: Sequence[str] | None) -> str | None:
    return ",".join(names) if names else None


# --- Answers ---------------------------------------------------------------------------


class Scored(TypedDict):
    item_id: str
    score: float
    reasons: NotRequired[list[str]]


class Item(TypedDict):
    item_id: str
    title: str
    description: str | None
    category: str | None
    tags: list[str]
    attributes: dict[str, Any]
    published_at: str | None
    created_at: str
    updated_at: str


class ItemPage(TypedDict):
    items: list[Item]
    next_cursor: str | None


class Upserted(TypedDict):
    upserted: int


class ItemsDeleted(TypedDict):
    deleted: int
    unknown: list[str]


class User(TypedDict):
    user_id: str
    attributes: dict[str, Any]
    interaction_count: int
    last_interaction_at: str | None


class Accepted(TypedDict):
    accepted: int
    duplicates: int


class Interaction(TypedDict):
    item_id: str
    type: str
    value: float | None
    timestamp: str
    event_id: str | None


class InteractionPage(TypedDict):
    interactions: list[Interaction]
    next_cursor: str | None


class Recommendations(TypedDict):
    user_id: str
    items: list[Scored]
    index_version: int | None
    strategy: str
    variant: NotRequired[str | None]
    cached: bool
    recommendation_id: str


class SessionRecommendations(TypedDict):
    items: list[Scored]
    index_version: int | None
    strategy: str
    unknown_items: list[str]
    recommendation_id: str


class SimilarItems(TypedDict):
    item_id: str
    items: list[Scored]
    index_version: int | None
    recommendation_id: str


class Trending(TypedDict):
    variant: str
    items: list[Scored]
    recommendation_id: str


class SimilarUser(TypedDict):
    user_id: str
    similarity: float


class SimilarUsers(TypedDict):
    user_id: str
    users: list[SimilarUser]
    recommendation_id: str


class SearchResults(TypedDict):
    items: list[Scored]
    recommendation_id: str


class Explanation(TypedDict):
    user_id: str
    item_id: str
    score: float
    components: dict[str, float | None]
    reasons: list[str]


class Build(TypedDict):
    build_id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    stage: str
    error: NotRequired[str | None]
    version: NotRequired[int | None]
    gate: NotRequired[dict[str, Any] | None]


class Version(TypedDict):
    version: int
    created_at: str
    items: int
    users: int
    metrics: dict[str, Any]
    state: str


class VersionList(TypedDict):
    active: int | None
    versions: list[Version]


class Experiment(TypedDict):
    experiment_id: str
    variants: list[dict[str, Any]]
    active: bool


class ExperimentList(TypedDict):
    experiments: list[Experiment]


class Scenario(TypedDict):
    scenario_id: str


class ScenarioList(TypedDict):
    scenarios: list[Scenario]


class Key(TypedDict):
    key_id: str
    name: str
    role: str


class NewKey(Key):
    token: str


class KeyList(TypedDict):
    keys: list[Key]


class ExportQueued(TypedDict):
    export_id: str


class Export(TypedDict):
    export_id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    rows: int
    total: int | None
    error: NotRequired[str | None]


# --- Catalog ---------------------------------------------------------------------------


def put_item(item_id: str, item: Mapping[str, Any]) -> Call[Item]:
    """Create or replace an item: `{title, description?, category?, tags?, attributes?,
    published_at?}`."""
    return Call("PUT", f"{API}/items/{_id(item_id)}", json=dict(item))


def put_items(items: Sequence[Mapping[str, Any]]) -> Call[Upserted]:
    """Up to 10,000 items, each with its `item_id`; all or nothing."""
    return Call("POST", f"{API}/items/batch", json={"items": list(items)})


def get_item(item_id: str) -> Call[Item]:
    return Call("GET", f"{API}/items/{_id(item_id)}")


def delete_item(item_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/items/{_id(item_id)}")


def delete_items(item_ids: Sequence[str]) -> Call[ItemsDeleted]:
    """Up to 10,000 items in one transaction; ids naming no live item come back as unknown."""
    return Call("POST", f"{API}/items/delete", json={"item_ids": list(item_ids)})


def items_page(
    *, category: str | None = None, limit: int = 100, cursor: str | None = None
) -> Call[ItemPage]:
    params = {"category": category, "limit": limit, "cursor": cursor}
    return Call("GET", f"{API}/items", params=params)


# --- Users and interactions ------------------------------------------------------------


def put_user(user_id: str, attributes: Mapping[str, Any] | None = None) -> Call[User]:
    return Call("PUT", f"{API}/users/{_id(user_id)}", json={"attributes": dict(attributes or {})})


def get_user(user_id: str) -> Call[User]:
    return Call("GET", f"{API}/users/{_id(user_id)}")


def erase_user(user_id: str) -> Call[None]:
    """Erase the user: interactions, profile, lists; late copies of them are dropped."""
    return Call("DELETE", f"{API}/users/{_id(user_id)}")


def interactions_page(
    user_id: str, *, limit: int = 50, cursor: str | None = None
) -> Call[InteractionPage]:
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", f"{API}/users/{_id(user_id)}/interactions", params=params)


def record_interaction(
    user_id: str,
    item_id: str,
    type: str,
    *,
    value: float | None = None,
    timestamp: str | None = None,
    event_id: str | None = None,
    recommendation_id: str | None = None,
) -> Call[Accepted]:
    body = {
        "user_id": user_id,
        "item_id": item_id,
        "type": type,
        "value": value,
        "timestamp": timestamp,
        "event_id": event_id,
        "recommendation_id": recommendation_id,
    }
    return Call("POST", f"{API}/interactions", json=_present(body))


def record_interactions(interactions: Sequence[Mapping[str, Any]]) -> Call[Accepted]:
    """Up to 10,000 interactions; all or nothing, each bad row named."""
    return Call("POST", f"{API}/interactions/batch", json={"interactions": list(interactions)})


# --- Recommendations -------------------------------------------------------------------


def recommend(
    user_id: str,
    *,
    limit: int = 10,
    offset: int = 0,
    category: str | None = None,
    filter: str | None = None,
    scenario: str | None = None,
    fields: Sequence[str] | None = None,
    exclude_seen: bool | None = None,
    experiment_id: str | None = None,
    explain: bool = False,
) -> Call[Recommendations]:
    params = {
        "limit": limit,
        "offset": offset,
        "category": category,
        "filter": filter,
        "scenario": scenario,
        "fields": _fields(fields),
        "exclude_seen": exclude_seen,
        "experiment_id": experiment_id,
        "explain": explain or None,
    }
    return Call("GET", f"{API}/recommendations/{_id(user_id)}", params=params)


def recommend_session(
    items: Sequence[str | Mapping[str, str]],
    *,
    limit: int = 10,
    offset: int = 0,
    filter: str | None = None,
    scenario: str | None = None,
    fields: Sequence[str] | None = None,
    explain: bool = False,
) -> Call[SessionRecommendations]:
    """An anonymous session's items, newest last: ids, or {item_id, type}."""
    body = {
        "items": [i if isinstance(i, str) else dict(i) for i in items],
        "limit": limit,
        "offset": offset,
        "filter": filter,
        "scenario": scenario,
        "fields": list(fields) if fields else None,
        "explain": explain,
    }
    return Call("POST", f"{API}/recommendations", json=_present(body))


def explain(user_id: str, item_id: str, *, scenario: str | None = None) -> Call[Explanation]:
    path = f"{API}/recommendations/{_id(user_id)}/explain/{_id(item_id)}"
    return Call("GET", path, params={"scenario": scenario})


def similar_items(
    item_id: str,
    *,
    limit: int = 10,
    category: str | None = None,
    filter: str | None = None,
    scenario: str | None = None,
    fields: Sequence[str] | None = None,
) -> Call[SimilarItems]:
    params = {
        "limit": limit,
        "category": category,
        "filter": filter,
        "scenario": scenario,
        "fields": _fields(fields),
    }
    return Call("GET", f"{API}/items/{_id(item_id)}/similar", params=params)


def similar_users(
    user_id: str, *, limit: int = 10, min_similarity: float | None = None
) -> Call[SimilarUsers]:
    params = {"limit": limit, "min_similarity": min_similarity}
    return Call("GET", f"{API}/users/{_id(user_id)}/similar", params=params)


def trending(
    *,
    variant: str = "hot",
    category: str | None = None,
    limit: int = 10,
    window_hours: int | None = None,
    filter: str | None = None,
    fields: Sequence[str] | None = None,
) -> Call[Trending]:
    params = {
        "variant": variant,
        "category": category,
        "limit": limit,
        "window_hours": window_hours,
        "filter": filter,
        "fields": _fields(fields),
    }
    return Call("GET", f"{API}/trending", params=params)


def search(
    text: str,
    *,
    limit: int = 10,
    category: str | None = None,
    filter: str | None = None,
    scenario: str | None = None,
    fields: Sequence[str] | None = None,
) -> Call[SearchResults]:
    body = {
        "text": text,
        "limit": limit,
        "category": category,
        "filter": filter,
        "scenario": scenario,
        "fields": list(fields) if fields else None,
    }
    return Call("POST", f"{API}/search", json=_present(body))


# --- Index builds and versions ---------------------------------------------------------


def request_build(*, reason: str | None = None, force: bool = False) -> Call[Build]:
    return Call("POST", f"{API}/index/builds", json=_present({"reason": reason, "force": force}))


def get_build(build_id: str) -> Call[Build]:
    return Call("GET", f"{API}/index/builds/{_id(build_id)}")


def versions() -> Call[VersionList]:
    return Call("GET", f"{API}/index/versions")


def get_version(version: int) -> Call[dict[str, Any]]:
    return Call("GET", f"{API}/index/versions/{int(version)}")


def activate(version: int) -> Call[dict[str, Any]]:
    """Serve `version` everywhere: a rollback when it is older."""
    return Call("POST", f"{API}/index/versions/{int(version)}/activate")


# --- Experiments -----------------------------------------------------------------------


def experiments() -> Call[ExperimentList]:
    return Call("GET", f"{API}/experiments")


def create_experiment(
    experiment_id: str, variants: Sequence[Mapping[str, Any]], **more: Any
) -> Call[Experiment]:
    body = {"experiment_id": experiment_id, "variants": [dict(v) for v in variants], **more}
    return Call("POST", f"{API}/experiments", json=body)


def get_experiment(experiment_id: str) -> Call[Experiment]:
    return Call("GET", f"{API}/experiments/{_id(experiment_id)}")


def stop_experiment(experiment_id: str, *, reason: str | None = None) -> Call[Experiment]:
    path = f"{API}/experiments/{_id(experiment_id)}/stop"
    return Call("POST", path, json=_present({"reason": reason}))


def experiment_results(experiment_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"{API}/experiments/{_id(experiment_id)}/results")


# --- Scenarios -------------------------------------------------------------------------


def put_scenario(scenario_id: str, scenario: Mapping[str, Any]) -> Call[Scenario]:
    return Call("PUT", f"{API}/scenarios/{_id(scenario_id)}", json=dict(scenario))


def get_scenario(scenario_id: str) -> Call[Scenario]:
    return Call("GET", f"{API}/scenarios/{_id(scenario_id)}")


def scenarios() -> Call[ScenarioList]:
    return Call("GET", f"{API}/scenarios")


def delete_scenario(scenario_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/scenarios/{_id(scenario_id)}")


# --- Keys ------------------------------------------------------------------------------


def create_key(name: str, role: Literal["read", "write", "admin"]) -> Call[NewKey]:
    """A new API key; its token is in this answer only."""
    return Call("POST", f"{API}/keys", json={"name": name, "role": role})


def keys() -> Call[KeyList]:
    return Call("GET", f"{API}/keys")


def revoke_key(key_id: str) -> Call[None]:
    return Call("DELETE", f"{API}/keys/{_id(key_id)}")


# --- Exports ---------------------------------------------------------------------------


def create_export(
    kind: Literal["recommendations", "similar_items"],
    *,
    ids: Sequence[str] | None = None,
    limit: int = 10,
    filter: str | None = None,
    scenario: str | None = None,
) -> Call[ExportQueued]:
    body = {
        "kind": kind,
        "ids": list(ids) if ids is not None else None,
        "limit": limit,
        "filter": filter,
        "scenario": scenario,
    }
    return Call("POST", f"{API}/exports", json=_present(body))


def get_export(export_id: str) -> Call[Export]:
    return Call("GET", f"{API}/exports/{_id(export_id)}")


def export_download_path(export_id: str) -> str:
    return f"{API}/exports/{_id(export_id)}/download"


# --- Events ----------------------------------------------------------------------------


class Replayed(TypedDict):
    replayed: int
    by_topic: dict[str, int]
    unreadable: int


def dead_letters(*, limit: int = 100) -> Call[dict[str, Any]]:
    """The oldest dead letters: `{letters: [{position, original, error, topic, at}]}`."""
    return Call("GET", f"{API}/events/dead", params={"limit": limit})


def replay_dead(*, limit: int = 10_000) -> Call[Replayed]:
    """Publish the dead letters' originals to their topics again, and drop the letters."""
    return Call("POST", f"{API}/events/dead/replay", json={"limit": limit})


# --- Service ---------------------------------------------------------------------------


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health")


def ready() -> Call[dict[str, Any]]:
    """200 when PostgreSQL, Redis and the object store answer; Unavailable otherwise."""
    return Call("GET", "/health/ready")


def _present(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without its unset (None) fields: the service's defaults apply."""
    return {k: v for k, v in body.items() if v is not None}
