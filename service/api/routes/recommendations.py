"""What client apps ask for: personal lists, similar items and users, trending, search.

Each route parses its request, calls its use case (service/usecases/) and returns what it
answers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, Field

from common.models import (
    FILTER_TEXT,
    ITEM_FIELDS,
    Addressable,
    Explanation,
    Recommendations,
    SearchIn,
    SearchResults,
    SessionIn,
    SessionRecommendations,
    SimilarItems,
    SimilarUsers,
    Text,
    TrendingList,
)
from service.api.deps import AppDep, Guarded, require
from service.api.routes import API, ERRORS
from service.usecases import explain as explanation
from service.usecases import search as searching
from service.usecases import session_list, similar, trending
from service.usecases.user_list import ListRequest, user_list

router = APIRouter(
    route_class=Guarded,
    prefix=API,
    tags=["recommendations"],
    dependencies=[require("read")],
    responses=ERRORS,
)

Id = Annotated[str, Path(min_length=1, max_length=128), Text, Addressable]
Category = Annotated[str | None, Query(min_length=1, max_length=128), Text]
Limit = Annotated[int, Query(ge=1, le=200)]
_FIELD = f"({'|'.join(ITEM_FIELDS)})?"
# Names of item fields, comma-separated (blanks between are allowed, and nothing between
# two commas).
FIELD_LIST = f"^ *{_FIELD} *(, *{_FIELD} *)*$"
Filter = Annotated[
    str | None,
    Query(
        max_length=FILTER_TEXT,
        description="An expression items must pass (../API.md, Business rules); "
        'e.g. `category in ["Horror"] and attributes.year >= 1990`',
    ),
    Text,
]
Scenario = Annotated[
    str | None,
    Query(min_length=1, max_length=128, description="A stored scenario whose rules apply"),
    Text,
]
Fields = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=FIELD_LIST,
        description="Item fields to add to each item, comma-separated: title, description, "
        "category, tags, attributes, published_at",
    ),
]
SIMILAR_LIMIT = 10


class ListQuery(BaseModel):
    """The query of a personal list, validated in one call (a parameter each costs a cheap
    answer a few percent)."""

    limit: Annotated[int, Field(ge=1, le=200)] = 10
    offset: Annotated[int, Field(ge=0, le=10_000)] = 0
    category: Annotated[str | None, Field(min_length=1, max_length=128), Text] = None
    filter: Annotated[str | None, Field(max_length=FILTER_TEXT), Text] = None
    fields: Annotated[str | None, Field(max_length=200, pattern=FIELD_LIST)] = None
    scenario: Annotated[str | None, Field(min_length=1, max_length=128), Text] = None
    # Unset: the scenario's, or true.
    exclude_seen: bool | None = None
    experiment_id: Annotated[str | None, Field(max_length=128), Text] = None
    explain: bool = False

    def request(self, user_id: str, cache_control: str | None) -> ListRequest:
        """The use case's request: `?experiment_id=` names none, and `Cache-Control:
        no-cache` skips the answer cache."""
        return ListRequest(
            user_id=user_id,
            limit=self.limit,
            offset=self.offset,
            category=self.category,
            filter=self.filter,
            fields=self.fields,
            scenario=self.scenario,
            exclude_seen=self.exclude_seen,
            experiment_id=self.experiment_id or None,
            explain=self.explain,
            fresh=cache_control is not None and "no-cache" in cache_control.lower(),
        )


@router.get("/recommendations/{user_id}")
async def recommend(
    user_id: Id,
    app: AppDep,
    query: Annotated[ListQuery, Query()],
    cache_control: Annotated[str | None, Header(max_length=256)] = None,
) -> Recommendations:
    """A user's list; unknown and new users get the popular items.

    Lists ranked live are kept for a minute, or until the user interacts;
    `Cache-Control: no-cache` skips that cache (and keeps the new list). Under a running
    experiment the list is the user's variant's, and its items count as that variant's
    impressions."""
    return await user_list(app, query.request(user_id, cache_control))


@router.post("/recommendations")
async def recommend_session(body: SessionIn, app: AppDep) -> SessionRecommendations:
    """Recommendations for a visitor who has not signed in, from the items their session
    touched (newest last): ranked as a user's list is, from a profile made on the spot. No
    user is created and nothing is stored; items the served version does not know are
    listed in `unknown_items`."""
    return await session_list.recommend_session(app, body)


@router.get("/recommendations/{user_id}/explain/{item_id}")
async def explain(user_id: Id, item_id: Id, app: AppDep, scenario: Scenario = None) -> Explanation:
    """Why an item ranks where it does for a user: each source's score, weight and share;
    with a scenario, the boosters that would move it."""
    return await explanation.explain(app, user_id, item_id, scenario)


@router.get("/items/{item_id}/similar")
async def similar_items(
    item_id: Id,
    app: AppDep,
    limit: Limit = SIMILAR_LIMIT,
    category: Category = None,
    filter: Filter = None,
    fields: Fields = None,
    scenario: Scenario = None,
) -> SimilarItems:
    """Items nearest in meaning; an item newer than the index is embedded on the spot."""
    return await similar.similar_items(app, item_id, limit, category, filter, fields, scenario)


@router.get("/users/{user_id}/similar")
async def similar_users(
    user_id: Id,
    app: AppDep,
    limit: Limit = 10,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
) -> SimilarUsers:
    """Users whose taste vectors are nearest to this one's."""
    return await similar.similar_users(app, user_id, limit, min_similarity)


@router.get("/trending")
async def trending_items(
    app: AppDep,
    variant: Literal["hot", "rising", "fresh", "viral"] = "hot",
    category: Category = None,
    limit: Limit = 10,
    window_hours: Annotated[int | None, Query(ge=1, le=24 * 365)] = None,
    filter: Filter = None,
    fields: Fields = None,
    scenario: Scenario = None,
) -> TrendingList:
    """Items trending now; see indexing/trending.py for each variant's formula."""
    return await trending.trending(
        app, variant, category, limit, window_hours, filter, fields, scenario
    )


@router.post("/search")
async def search(body: SearchIn, app: AppDep) -> SearchResults:
    """Items whose text is nearest in meaning to the query."""
    return await searching.search(
        app, body.text, body.limit, body.category, body.filter, body.fields, body.scenario
    )
