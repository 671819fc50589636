"""`fields`: stored item fields added to each item of a list answer.

The fields of a whole answer are read in one batched lookup (service/catalog_fields.py
keeps them until an item changes), never one query per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from common.errors import InvalidInput
from common.models import ITEM_FIELDS, Scored
from service.application import Application


def parse(given: str | Sequence[str] | None) -> tuple[str, ...]:
    """Field names from a query's comma-separated text or a body's list, in the catalog's
    order; an unknown name is refused, named."""
    if not given:
        return ()
    names = given.split(",") if isinstance(given, str) else list(given)
    wanted = {name.strip() for name in names if name.strip()}
    unknown = sorted(wanted - set(ITEM_FIELDS))
    if unknown:
        raise InvalidInput(
            f"fields: {', '.join(map(repr, unknown))} is not an item field "
            f"(one of {', '.join(ITEM_FIELDS)})",
            details=[{"field": "fields", "unknown": unknown}],
        )
    return tuple(name for name in ITEM_FIELDS if name in wanted)


async def add(app: Application, items: Iterable[Scored], names: tuple[str, ...]) -> None:
    """Sets `names` on each item from its stored fields (an item deleted meanwhile keeps
    none)."""
    items = list(items)
    if not names or not items:
        return
    stored = await app.catalog_fields.items([item.item_id for item in items])
    for item in items:
        found = stored.get(item.item_id)
        if found is None:
            continue
        for name in names:
            setattr(item, name, getattr(found, name))
