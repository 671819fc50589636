"""No list comes out short while items are live.

A list ranked from a version knows only the version's items. Once many of them are deleted
(a catalog replaced before the next build), or a user has seen most of what it ranked,
removing those can leave a list short, or empty. It is then filled from live popularity:
live items by all of their history, best first (storage/trending.py; the refresh job keeps
them), leaving out what the list holds and what the user must not get. A filled item's
score is its popularity, capped at the score before it, so scores still fall along a list.
"""

from __future__ import annotations

from collections.abc import Collection

Pairs = list[tuple[str, float]]


def filled(pairs: Pairs, count: int, popular: Pairs, *excluded: Collection[str]) -> Pairs:
    """`pairs` and then, up to `count` in all, the `popular` items in none of `excluded`
    (several collections, each asked in turn: the deleted items are never copied)."""
    if len(pairs) >= count:
        return pairs
    shown = {item_id for item_id, _ in pairs}
    out = list(pairs)
    last = pairs[-1][1] if pairs else float("inf")
    for item_id, score in popular:
        if item_id in shown or any(item_id in these for these in excluded):
            continue
        last = min(last, score)
        out.append((item_id, last))
        shown.add(item_id)
        if len(out) == count:
            break
    return out
