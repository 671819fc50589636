"""The shapes that cross the HTTP boundary, validated once on the way in."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    RootModel,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from common.ids import new_id

MAX_BATCH = 10_000
# Clocks differ: a timestamp this far ahead of ours is still taken as now-ish.
FUTURE_TOLERANCE = timedelta(minutes=5)


def _aware(value: datetime | None) -> datetime | None:
    """Timestamps without a zone are taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# Caps on free-form `attributes`, so one item cannot be megabytes of JSON or nest past what
# the JSON codecs handle.
MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_ATTRIBUTES_DEPTH = 8
MAX_ATTRIBUTES_ENTRIES = 1_000
INT64 = 2**63


# What `_text` and `_id` refuse, as the JSON Schema patterns the OpenAPI document states
# (ECMA-262 syntax, which Python's `re` reads alike). Unicode category Cc is exactly U+0000 to
# U+001F and U+007F to U+009F, and its stability policy keeps it so;
# tests/common/test_id_rules.py holds each pattern to its check on every code point.
TEXT_PATTERN = r"^[^\u0000]*$"
ID_PATTERN = r"^[^/\u0000-\u001f\u007f-\u009f]*$"


def _text(value: str) -> str:
    """PostgreSQL cannot store NUL in text: refuse it here, as bad input."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _id(value: str) -> str:
    """Ids appear in URL paths: a '/' or a control character would make one unaddressable."""
    if "/" in value or any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain '/' or control characters")
    return value


@dataclass(frozen=True)
class StringRule:
    """A check on a string, run after its type and lengths, that the JSON schema states as
    `pattern`, so that a client reading the schema sends only what the check passes.
    `implies` names the patterns of rules that this one's pattern already enforces."""

    check: Callable[[str], str]
    pattern: str
    implies: frozenset[str] = frozenset()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        stated = handler(schema)
        target = handler.resolve_ref_schema(stated)
        # `str | None` and the like: the rule applies to the string branch.
        for branch in target.get("anyOf", [target]):
            if branch.get("type") == "string":
                self._state(branch)
        return stated

    def _state(self, schema: JsonSchemaValue) -> None:
        given = schema.get("pattern")
        if given is None or given in self.implies:
            schema["pattern"] = self.pattern
        elif given != self.pattern and self.pattern not in _implied_by(given):
            schema.setdefault("allOf", []).append({"pattern": self.pattern})


def _implied_by(pattern: str) -> frozenset[str]:
    rule = _RULES.get(pattern)
    return rule.implies if rule else frozenset()


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    entries = 0

    def walk(node: Any, depth: int) -> None:
        nonlocal entries
        if depth > MAX_ATTRIBUTES_DEPTH:
            raise ValueError(f"nests deeper than {MAX_ATTRIBUTES_DEPTH} levels")
        if isinstance(node, dict):
            children = list(node.values())
            for key in node:
                _text(key)
        elif isinstance(node, list):
            children = node
        else:
            children = []
            if isinstance(node, str):
                _text(node)
            elif isinstance(node, int) and not -INT64 <= node < INT64:
                raise ValueError("integers must fit in 64 bits")
        entries += len(children)
        if entries > MAX_ATTRIBUTES_ENTRIES:
            raise ValueError(f"has more than {MAX_ATTRIBUTES_ENTRIES} keys and elements")
        for child in children:
            walk(child, depth + 1)

    walk(value, 1)
    if len(orjson.dumps(value)) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"is larger than {MAX_ATTRIBUTES_BYTES // 1024} KiB as JSON")
    return value


Text = StringRule(_text, TEXT_PATTERN)
# Refuses what `Id` refuses, for ids that arrive in URL paths.
Addressable = StringRule(_id, ID_PATTERN, implies=frozenset({TEXT_PATTERN}))
_RULES = {rule.pattern: rule for rule in (Text, Addressable)}
Id = Annotated[str, StringConstraints(min_length=1, max_length=128), Text, Addressable]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=128), Text]
# A filter expression (indexing/filters.py), bounded beyond a filter's own limit, so that
# one too long is refused as a filter (invalid_filter).
# The longest filter text taken (query string, scenario, body alike).
FILTER_TEXT = 4_000
FilterText = Annotated[str, StringConstraints(max_length=FILTER_TEXT), Text]


class AttributeValue(
    RootModel[None | bool | float | str | list["AttributeValue"] | dict[str, "AttributeValue"]]
):
    """A value inside `attributes`: any JSON without a NUL character in its strings and keys,
    whose integers fit in 64 bits."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        stated = handler(schema)
        definition = handler.resolve_ref_schema(stated)
        itself = next(branch["items"] for branch in definition["anyOf"] if "items" in branch)
        kept = {k: v for k, v in definition.items() if k in ("title", "description")}
        # One schema whose keywords each apply to one JSON type, not an anyOf of types: a value
        # of another type is never a way to break it, since every type is allowed.
        definition.clear()
        definition.update(
            {
                **kept,
                "type": ["null", "boolean", "number", "string", "array", "object"],
                "pattern": TEXT_PATTERN,
                "items": itself,
                "propertyNames": {"pattern": TEXT_PATTERN},
                "additionalProperties": itself,
                # An integer token must fit in 64 bits, a number with a fraction or an exponent
                # need not; JSON Schema cannot tell `1e30` from its digits written out, so every
                # number without a fraction is held to 64 bits.
                "if": {"type": "integer"},
                "then": {"minimum": -INT64, "maximum": INT64 - 1},
            }
        )
        return stated


@dataclass(frozen=True)
class _AttributesSchema:
    """The JSON schema of `attributes`: what `_attributes` passes, as far as JSON Schema can
    say it (not the limits on depth, entries and size, which its description gives)."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "object",
            "propertyNames": {"pattern": TEXT_PATTERN},
            "additionalProperties": handler(AttributeValue.__pydantic_core_schema__),
            "maxProperties": MAX_ATTRIBUTES_ENTRIES,
            "description": f"Free-form JSON, at most {MAX_ATTRIBUTES_DEPTH} levels deep, "
            f"{MAX_ATTRIBUTES_ENTRIES} keys and elements in all and "
            f"{MAX_ATTRIBUTES_BYTES // 1024} KiB as JSON.",
        }


Attributes = Annotated[dict[str, Any], AfterValidator(_attributes), _AttributesSchema()]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


_SECONDS = re.compile(r"-?\d{1,10}(\.\d+)?")
# Seconds since 1970 are taken within ten digits either way (to the year 2286): beyond, a
# number would be read as milliseconds.
MAX_SECONDS = 9_999_999_999


def _time(value: Any) -> Any:
    """A time is ISO 8601 text (a zone-less one is UTC), or seconds since 1970 as a JSON
    number or a string of digits (as datasets often give them), never a boolean."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 time, such as 2024-05-01T12:00:00Z")
    if isinstance(value, int | float):
        if abs(value) > MAX_SECONDS:
            raise ValueError(f"seconds since 1970 must lie within {MAX_SECONDS:,} either way")
        return value
    if isinstance(value, datetime) or (
        isinstance(value, str) and (_ISO_DATE.match(value) or _SECONDS.fullmatch(value))
    ):
        return value
    raise ValueError(
        "must be an ISO 8601 time, such as 2024-05-01T12:00:00Z, or seconds since 1970"
    )


# What `_time` takes, said as JSON Schema.
_TIME_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "number", "minimum": -MAX_SECONDS, "maximum": MAX_SECONDS},
            {"type": "string", "pattern": "^-?[0-9]{1,10}(\\.[0-9]+)?$"},
        ],
        "description": "ISO 8601 (a time without a zone is UTC), or seconds since 1970.",
    }
)


# Lax, unlike the rest of a body: a time comes as text or as seconds.
Timestamp = Annotated[
    datetime, Strict(False), BeforeValidator(_time), AfterValidator(_aware), _TIME_SCHEMA
]


def _numeric(value: Any) -> Any:
    """A number, or a string that is one (a value read from a CSV file), never a boolean."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    return value


# An interaction's value: a JSON number, or one as text, as loaders of CSV files send it.
Value = Annotated[
    float,
    Strict(False),
    BeforeValidator(_numeric),
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}]}
    ),
]


def _number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


# After an int's bounds, JSON Schema's integer: any number without a fraction, `10.0` as well
# as `10`, and no string.
AnyInteger = (Strict(False), BeforeValidator(_number))
# Any JSON number (an integer too), and no string or boolean.
AnyNumber = AnyInteger
Role = Literal["read", "write", "admin"]


class _In(BaseModel):
    # Unknown fields are refused: a misspelt `tag` should not silently vanish. Strict: a
    # field takes the JSON type its schema names, so `0` is not `false` and "5" is not 5.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ItemFields(_In):
    title: Annotated[str, StringConstraints(min_length=1, max_length=1_000), Text]
    description: Annotated[str, StringConstraints(max_length=20_000), Text] | None = None
    category: Tag | None = None
    tags: Annotated[list[Tag], Field(max_length=100)] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)
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
    attributes: Attributes = Field(default_factory=dict)


class User(BaseModel):
    user_id: str
    attributes: dict[str, Any]
    interaction_count: int
    last_interaction_at: datetime | None
    created_at: datetime
    updated_at: datetime


class InteractionIn(_In):
    """One interaction. A `rating` needs a `value` from 1 to 5; a `timestamp` more than five
    minutes ahead of the service's clock is refused."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"type": {"const": "rating"}}},
            "then": {
                "properties": {
                    "value": {
                        "anyOf": [
                            {"type": "number", "minimum": 1, "maximum": 5},
                            {"type": "string", "pattern": "^([1-4](\\.[0-9]+)?|5(\\.0+)?)$"},
                        ]
                    }
                },
                "required": ["value"],
            },
        }
    )

    user_id: Id
    item_id: Id
    type: Annotated[str, StringConstraints(min_length=1, max_length=32), Text]
    value: Annotated[Value, Field(allow_inf_nan=False)] | None = None
    timestamp: Timestamp | None = None
    event_id: Id | None = None
    # The recommendation_id of the answer whose list the item was chosen from: experiments
    # then attribute the interaction to that list exactly.
    recommendation_id: Id | None = None

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
    name: Tag
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


# The stored fields a list answer adds to its items when asked (`fields`).
ItemField = Literal["title", "description", "category", "tags", "attributes", "published_at"]
ITEM_FIELDS: tuple[str, ...] = get_args(ItemField)


class Scored(BaseModel):
    item_id: str
    score: float
    # Present only when explanations were asked for.
    reasons: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)
    # Present only when asked for with `fields` (and then even where null).
    title: str | MISSING = MISSING
    description: str | MISSING | None = MISSING
    category: str | MISSING | None = MISSING
    tags: list[str] | MISSING = MISSING
    attributes: dict[str, Any] | MISSING = MISSING
    published_at: datetime | MISSING | None = MISSING


class ListAnswer(BaseModel):
    """An answer that is a list shown to someone. Its `recommendation_id` is new on every
    answer, cached or not; an interaction may carry it back (InteractionIn), and an
    experiment then attributes that interaction to the list exactly."""

    recommendation_id: str = Field(default_factory=new_id)


class Recommendations(ListAnswer):
    user_id: str
    items: list[Scored]
    index_version: int | None
    strategy: str
    variant: str | None = None
    # With experiment_id: running (the answer is the variant's), stopped or unknown (the
    # default answer, no variant, nothing recorded).
    experiment_state: Literal["running", "stopped", "unknown"] | None = None
    cached: bool


class SimilarItems(ListAnswer):
    item_id: str
    items: list[Scored]
    index_version: int | None


class TrendingList(ListAnswer):
    variant: str
    category: str | None
    window_hours: int
    items: list[Scored]


class SimilarUser(BaseModel):
    user_id: str
    similarity: float


class SimilarUsers(ListAnswer):
    user_id: str
    users: list[SimilarUser]
    index_version: int | None


class SearchIn(_In):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2_000), Text]
    limit: Annotated[int, Field(ge=1, le=200), *AnyInteger] = 10
    category: Tag | None = None
    filter: FilterText | None = None
    fields: list[ItemField] | None = Field(default=None, max_length=len(ITEM_FIELDS))
    scenario: Tag | None = None


class SearchResults(ListAnswer):
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
    reason: Annotated[str, StringConstraints(max_length=500), Text] | None = None
    force: bool = False
    activate: bool = True


class Gate(BaseModel):
    """The quality gate's verdict on a build's version (indexing/gate.py): a build that
    succeeded with `passed` false made a version that was kept back, and `reason` says why."""

    passed: bool
    reason: str = ""
    figures: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _reason_of_older_verdicts(cls, data: Any) -> Any:
        """An older release recorded only a list of reasons."""
        if isinstance(data, dict) and "reason" not in data:
            data = data | {"reason": "; ".join(data.get("reasons") or [])}
        return data


class Build(BaseModel):
    build_id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    stage: str
    error: str | None = None
    version: int | None = None
    reason: str | None = None
    force: bool = False
    attempts: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    gate: Gate | None = None


class BuildList(BaseModel):
    """A page of builds, newest first; `next_cursor` asks for the next."""

    builds: list[Build]
    next_cursor: str | None


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


class ListsAfterBuild(BaseModel):
    """The users' lists ranked once the version went live, in parts (indexing/precompute.py):
    the build's own are counted in its manifest (`precomputed`)."""

    parts: int
    users: int


class VersionDetail(VersionSummary):
    manifest: dict[str, Any]
    lists_after_build: ListsAfterBuild


class Activated(BaseModel):
    active: int


class VariantIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64), Text]
    weight: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
    # Ranking settings to override, `strategy` or a pinned `index_version` (experiments/design.py).
    params: dict[str, Any] = Field(default_factory=dict)
    # Where no variant says `control`, the one named "control" is the control.
    control: bool = False


class ExperimentIn(_In):
    """A new experiment. Variant names are unique, and exactly one variant is the control:
    the one with `control: true`, or else the one named "control"."""

    experiment_id: Id
    variants: Annotated[list[VariantIn], Field(min_length=2, max_length=20)]
    description: Annotated[str, StringConstraints(max_length=2_000), Text] | None = None
    # Stop a variant by itself once it is significantly worse than control.
    guardrail: bool = False
    # What assignment hashes user ids with; unset, a random one. Reusing an earlier
    # experiment's salt (and weights) gives the same users the same variants.
    salt: Annotated[str, StringConstraints(min_length=8, max_length=128), Text] | None = None

    @model_validator(mode="after")
    def _one_control(self) -> ExperimentIn:
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(repeated)}")
        controls = [v.name for v in self.variants if v.control] or [
            n for n in names if n == "control"
        ]
        if len(controls) != 1:
            raise ValueError(
                "exactly one variant must be the control (`control: true`, or named "
                f"'control'); found {len(controls)}"
            )
        return self


class Variant(BaseModel):
    name: str
    weight: float
    params: dict[str, Any]
    control: bool
    active: bool = True
    stopped_at: datetime | None = None
    stop_reason: str | None = None


class Experiment(BaseModel):
    experiment_id: str
    description: str | None
    variants: list[Variant]
    active: bool
    guardrail: bool
    created_at: datetime
    stopped_at: datetime | None = None
    stop_reason: str | None = None


class ExperimentList(BaseModel):
    experiments: list[Experiment]


class TimelinePoint(BaseModel):
    """The users first shown a list under the variant up to `at` (the step's end), and how
    many of them have converted by now: the cohort's rate, growing as users join it. The
    last point is the results' figures."""

    at: datetime
    users: int
    converted_users: int
    conversion_rate: float


class VariantTimeline(BaseModel):
    name: str
    points: list[TimelinePoint]


class ExperimentTimeline(BaseModel):
    experiment_id: str
    step_seconds: int
    variants: list[VariantTimeline]


class StopIn(_In):
    reason: Annotated[str, StringConstraints(max_length=500), Text] | None = None


class VariantResult(BaseModel):
    name: str
    control: bool
    weight: float
    active: bool
    # Users shown at least one list under the variant, the items shown (with repeats), and
    # the shown items clicked (or liked, bought, ...) within the attribution window.
    users: int
    impressions: int
    clicks: int
    ctr: float
    conversions_per_user: float
    # Users with at least one conversion: the per-user outcome that is tested.
    converted_users: int
    conversion_rate: float
    conversion_rate_ci95: tuple[float, float]
    # Impressions by the index version that answered.
    index_versions: dict[str, int]
    # Against control (None for control itself, or while either side has no users).
    lift: float | None = None
    difference: float | None = None
    difference_ci95: tuple[float, float] | None = None
    z: float | None = None
    p_value: float | None = None
    significant: bool | None = None
    # Valid however often it is looked at (mSPRT): what the guardrail acts on.
    always_valid_p_value: float | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None


class ExperimentResults(BaseModel):
    experiment_id: str
    active: bool
    method: str
    alpha: float
    attribution_hours: float
    conversion_types: list[str]
    computed_at: datetime
    # False when impressions still waiting in Redis could not be counted (Redis down).
    complete: bool
    variants: list[VariantResult]


class Error(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorAnswer(BaseModel):
    """Every 4xx and 5xx body: {"error": {"code", "message", "details"?}}."""

    error: Error


# What a scenario's list is made by: the hybrid ranking, popularity, or a trending list.
ScenarioStrategy = Literal[
    "hybrid", "popular", "trending:hot", "trending:rising", "trending:fresh", "trending:viral"
]
Weight = Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False), *AnyNumber]


class Booster(_In):
    """Items passing `filter` have their score's transform multiplied by `weight`: above 1
    raises them, below 1 lowers them (docs/api.md, Scenarios)."""

    filter: Annotated[FilterText, StringConstraints(min_length=1)]
    weight: Weight


class Diversity(_In):
    """How varied the list is: maximal marginal relevance's lambda (1 keeps the relevance
    order), and at most so many items of one category."""

    mmr_lambda: Annotated[float, Field(ge=0, le=1), *AnyNumber] | None = None
    max_per_category: Annotated[int, Field(ge=1, le=200), *AnyInteger] | None = None


class ScenarioIn(_In):
    """A placement's rules, applied with `scenario=` on every list endpoint."""

    description: Annotated[str, StringConstraints(max_length=2_000), Text] | None = None
    filter: FilterText | None = None
    boosters: Annotated[list[Booster], Field(max_length=20)] = Field(default_factory=list)
    strategy: ScenarioStrategy = "hybrid"
    exclude_seen: bool | None = None
    diversity: Diversity | None = None


class Scenario(ScenarioIn):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    scenario_id: str
    created_at: datetime
    updated_at: datetime


class ScenarioList(BaseModel):
    scenarios: list[Scenario]


# A session names at most this many items (its newest last); more is a 400.
MAX_SESSION_ITEMS = 200


class SessionItemIn(_In):
    item_id: Id
    # One of the configured interaction types (not `rating`, which needs a value).
    type: Annotated[str, StringConstraints(min_length=1, max_length=32), Text] = "view"


class SessionIn(_In):
    """An anonymous session's items, newest last: ids, or {item_id, type} (a plain id is a
    view). Nothing is stored, and no user is created."""

    items: Annotated[
        list[Id | SessionItemIn],
        Field(min_length=1, json_schema_extra={"maxItems": MAX_SESSION_ITEMS}),
    ]
    limit: Annotated[int, Field(ge=1, le=200), *AnyInteger] = 10
    offset: Annotated[int, Field(ge=0, le=10_000), *AnyInteger] = 0
    category: Tag | None = None
    filter: FilterText | None = None
    scenario: Tag | None = None
    fields: list[ItemField] | None = Field(default=None, max_length=len(ITEM_FIELDS))
    explain: bool = False


class SessionRecommendations(ListAnswer):
    items: list[Scored]
    index_version: int | None
    strategy: str
    # The items the session named that the served version does not know.
    unknown_items: list[str]


class InteractionOut(BaseModel):
    item_id: str
    type: str
    value: float | None
    timestamp: datetime
    event_id: str | None


class InteractionPage(BaseModel):
    """A page of a user's interactions, newest first; `next_cursor` asks for the next."""

    interactions: list[InteractionOut]
    next_cursor: str | None


class ItemIdsIn(_In):
    item_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH)]


class ItemsDeleted(BaseModel):
    deleted: int
    # The ids that name no live item (never stored, or deleted before).
    unknown: list[str]


# Ids an export may list; without `ids` it walks every user or item.
MAX_EXPORT_IDS = 100_000


class ExportIn(_In):
    """Lists for many users (`recommendations`) or items (`similar_items`): those in `ids`,
    or all; the same lists the live endpoints answer, under the same filter and scenario."""

    kind: Literal["recommendations", "similar_items"]
    ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_EXPORT_IDS)] | None = None
    limit: Annotated[int, Field(ge=1, le=200), *AnyInteger] = 10
    filter: FilterText | None = None
    scenario: Tag | None = None


class ExportQueued(BaseModel):
    export_id: str


class Export(BaseModel):
    export_id: str
    kind: Literal["recommendations", "similar_items"]
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    rows: int
    # How many ids it walks; known once it starts.
    total: int | None = None
    error: str | None = None
    attempts: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class DeadLetter(BaseModel):
    """A message the consumers could not accept: the raw text, why, and where it came from."""

    position: str
    original: str | None
    error: dict[str, Any] | None
    topic: str | None
    at: str | None


class DeadLetters(BaseModel):
    letters: list[DeadLetter]


class ReplayIn(_In):
    limit: Annotated[int, Field(ge=1, le=100_000), *AnyInteger] = 10_000


class Replayed(BaseModel):
    replayed: int
    by_topic: dict[str, int]
    # Letters that named no incoming topic (or were not letters): dropped.
    unreadable: int
