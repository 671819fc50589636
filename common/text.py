"""The text an encoder sees for an item, and the hash that says whether it changed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def item_text(
    title: str, description: str | None, category: str | None, tags: Sequence[str]
) -> str:
    """Title first (it carries the most signal), then category, tags and description."""
    parts = [title.strip()]
    if category:
        parts.append(f"Category: {category.strip()}.")
    if tags:
        parts.append("Tags: " + ", ".join(t.strip() for t in tags) + ".")
    if description:
        parts.append(description.strip())
    return "\n".join(parts)


def item_labels(category: str | None, tags: Sequence[str]) -> str:
    """What kind of item it is, in words of its own: its category and tags ("" for none).
    Embedded apart from the whole text (embeddings/encoder.py, `embed_items`), so that they
    weigh as much as the title does: a film's title says its year as loudly as its genre."""
    parts = []
    if category:
        parts.append(f"Category: {category.strip()}.")
    if tags:
        parts.append("Tags: " + ", ".join(t.strip() for t in tags) + ".")
    return " ".join(parts)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
