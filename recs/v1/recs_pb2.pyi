import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "reasons", "title", "description", "category", "tags", "attributes", "published_at")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    title: str
    description: str
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    attributes: _struct_pb2.Struct
    published_at: _timestamp_pb2.Timestamp
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "limit", "offset", "category", "filter", "scenario", "fields", "exclude_seen", "experiment_id", "explain")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEEN_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    offset: int
    category: str
    filter: str
    scenario: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    exclude_seen: bool
    experiment_id: str
    explain: bool
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., category: _Optional[str] = ..., filter: _Optional[str] = ..., scenario: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., exclude_seen: _Optional[bool] = ..., experiment_id: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("user_id", "items", "index_version", "strategy", "variant", "experiment_state", "cached", "recommendation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_STATE_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    index_version: int
    strategy: str
    variant: str
    experiment_state: str
    cached: bool
    recommendation_id: str
    def __init__(self, user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., index_version: _Optional[int] = ..., strategy: _Optional[str] = ..., variant: _Optional[str] = ..., experiment_state: _Optional[str] = ..., cached: _Optional[bool] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class SessionItem(_message.Message):
    __slots__ = ("item_id", "type")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    type: str
    def __init__(self, item_id: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class RecommendSessionRequest(_message.Message):
    __slots__ = ("items", "limit", "offset", "category", "filter", "scenario", "fields", "explain")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SessionItem]
    limit: int
    offset: int
    category: str
    filter: str
    scenario: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    explain: bool
    def __init__(self, items: _Optional[_Iterable[_Union[SessionItem, _Mapping]]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., category: _Optional[str] = ..., filter: _Optional[str] = ..., scenario: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., explain: _Optional[bool] = ...) -> None: ...

class RecommendSessionResponse(_message.Message):
    __slots__ = ("items", "index_version", "strategy", "unknown_items", "recommendation_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    index_version: int
    strategy: str
    unknown_items: _containers.RepeatedScalarFieldContainer[str]
    recommendation_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., index_version: _Optional[int] = ..., strategy: _Optional[str] = ..., unknown_items: _Optional[_Iterable[str]] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class SimilarItemsRequest(_message.Message):
    __slots__ = ("item_id", "limit", "category", "filter", "scenario", "fields")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    limit: int
    category: str
    filter: str
    scenario: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., limit: _Optional[int] = ..., category: _Optional[str] = ..., filter: _Optional[str] = ..., scenario: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class SimilarItemsResponse(_message.Message):
    __slots__ = ("item_id", "items", "index_version", "recommendation_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    index_version: int
    recommendation_id: str
    def __init__(self, item_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., index_version: _Optional[int] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class TrendingRequest(_message.Message):
    __slots__ = ("variant", "category", "limit", "window_hours", "filter", "fields", "scenario")
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_HOURS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    variant: str
    category: str
    limit: int
    window_hours: int
    filter: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    scenario: str
    def __init__(self, variant: _Optional[str] = ..., category: _Optional[str] = ..., limit: _Optional[int] = ..., window_hours: _Optional[int] = ..., filter: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., scenario: _Optional[str] = ...) -> None: ...

class TrendingResponse(_message.Message):
    __slots__ = ("variant", "category", "window_hours", "items", "recommendation_id")
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_HOURS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    variant: str
    category: str
    window_hours: int
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    recommendation_id: str
    def __init__(self, variant: _Optional[str] = ..., category: _Optional[str] = ..., window_hours: _Optional[int] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "limit", "category", "filter", "scenario", "fields")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    limit: int
    category: str
    filter: str
    scenario: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., limit: _Optional[int] = ..., category: _Optional[str] = ..., filter: _Optional[str] = ..., scenario: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("items", "index_version", "recommendation_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    index_version: int
    recommendation_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., index_version: _Optional[int] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class Interaction(_message.Message):
    __slots__ = ("user_id", "item_id", "type", "value", "timestamp", "event_id", "recommendation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    type: str
    value: float
    timestamp: _timestamp_pb2.Timestamp
    event_id: str
    recommendation_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[str] = ..., value: _Optional[float] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_id: _Optional[str] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class RecordInteractionsResponse(_message.Message):
    __slots__ = ("accepted", "duplicates")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...
