"""Why an item is in a user's list, in words, from the sources that put it there (each
source says its own reason: `Source.explain`, indexing/sources/)."""

from __future__ import annotations

from indexing import sources
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
        text = sources.named(source).explain(version, row, liked, recent)
        if text is not None and text not in said:
            said.append(text)
    return said or ["matches your taste"]
