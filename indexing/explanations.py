"""Why an item is in a user's list, in words, from the sources that put it there."""

from __future__ import annotations

import numpy as np

from indexing.artifacts import IndexVersion
from indexing.hybrid import SOURCES, Blend, Rows

# Besides the strongest source, a second is named when it gives at least this share of the
# item's positive score.
SHARE = 0.2


def contributions(blended: Blend, position: int) -> dict[str, float]:
    """Each source's weighted, scaled score for the candidate at `position`."""
    return {k: float(blended.weights[k] * blended.scaled[k][position]) for k in SOURCES}


def reasons(
    version: IndexVersion, blended: Blend, position: int, liked: Rows, recent: Rows
) -> list[str]:
    """At most two reasons, strongest source first."""
    parts = contributions(blended, position)
    total = sum(v for v in parts.values() if v > 0)
    row = int(blended.rows[position])
    said: list[str] = []
    for source, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        if value <= 0 or (said and value < SHARE * total) or len(said) == 2:
            continue
        text = _say(version, source, row, liked, recent)
        if text is not None and text not in said:
            said.append(text)
    return said or ["matches your taste"]


def _say(version: IndexVersion, source: str, row: int, liked: Rows, recent: Rows) -> str | None:
    if source == "collaborative":
        return "popular with people like you"
    if source == "trending":
        code = int(version.item_category[row])
        return f"trending in {version.category_names[code]}" if code >= 0 else "trending now"
    pool = recent if source in ("recent", "sequence") else liked
    because = _closest(version, source, row, pool)
    if because is None:
        return None
    if source == "sequence":
        return f"often chosen after {version.item_titles[because]}"
    return f"because you liked {version.item_titles[because]}"


def _closest(version: IndexVersion, source: str, row: int, pool: Rows) -> int | None:
    """The item of `pool` that most explains `row` for this source."""
    if len(pool) == 0:
        return None
    collab = version.collaborative
    if source in ("ease", "cooccurrence", "recent", "sequence") and collab is not None:
        matrices = {"cooccurrence": collab.neighbours, "sequence": collab.following}
        matrix = matrices.get(source, collab.ease)
        strength = np.asarray(matrix[pool][:, row].todense()).ravel()
        if strength.max(initial=0.0) > 0:
            return int(pool[int(np.argmax(strength))])
    similarity = version.item_vectors[pool] @ version.item_vectors[row]
    return int(pool[int(np.argmax(similarity))])
