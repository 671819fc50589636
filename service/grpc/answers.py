"""The use cases' answers as the proto's messages: the same fields as the JSON answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.struct_pb2 import Struct

from common.models import Scored
from recs.v1 import recs_pb2 as pb


def items(found: Sequence[Scored]) -> list[Any]:
    out = []
    for item in found:
        scored = pb.ScoredItem(item_id=item.item_id, score=item.score)
        if item.reasons:
            scored.reasons.extend(item.reasons)
        given = item.model_dump(exclude={"item_id", "score", "reasons"})
        for name in ("title", "description", "category"):
            if given.get(name) is not None:
                setattr(scored, name, given[name])
        if given.get("tags"):
            scored.tags.extend(given["tags"])
        if given.get("attributes") is not None:
            attributes = Struct()
            attributes.update(given["attributes"])
            scored.attributes.CopyFrom(attributes)
        if given.get("published_at") is not None:
            scored.published_at.FromDatetime(given["published_at"])
        out.append(scored)
    return out


def optional(**values: Any) -> dict[str, Any]:
    """Keyword arguments for a message, without those that are None (absent `optional`s)."""
    return {k: v for k, v in values.items() if v is not None}
