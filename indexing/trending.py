"""Trending lists, computed from the interactions of a recent window.

With w = an interaction's type weight (negative ones count as zero), age in hours, H the
half-life and W the window:
  hot     sum of w * 0.5 ** (age / H)                        decayed weighted engagement
  rising  (E_new - E_old) / (E_old + 1) * ln(1 + E_new)      growth of the newer half of the
                                                             window over the older half, damped
                                                             for items with little engagement
  fresh   hot, among items published within `fresh_days`     engagement with new items
  viral   u3 - 2 u2 + u1, while u3 > u2 (else 0)              acceleration in distinct users,
                                                             u1..u3 the window's thirds, oldest
                                                             first
Items whose score is not positive are left out. The lists are computed overall and per category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.settings import InteractionSettings, Settings
from common.window import WindowRows
from indexing.artifacts import IndexVersion
from indexing.hybrid import Trend
from indexing.profiles import type_weights

VARIANTS = ("hot", "rising", "fresh", "viral")
TOP = 1_000
# (variant, category or None for all) -> items best first, with their scores
TrendingLists = dict[tuple[str, str | None], list[tuple[str, float]]]


@dataclass(frozen=True)
class Window:
    """A window's interactions, their items and users as codes: per distinct item (sorted by
    id, so that an item's code orders ties as its id does) and per interaction."""

    item_ids: list[str]  # distinct, sorted
    categories: list[str | None]  # per item
    published: npt.NDArray[np.float64]  # per item: epoch seconds (NaN if unknown)
    items: npt.NDArray[np.int64]  # per interaction: its item's code
    users: npt.NDArray[np.int64]  # per interaction: its user's code
    weights: npt.NDArray[np.float64]  # per interaction, negative ones as 0
    at: npt.NDArray[np.float64]  # per interaction: epoch seconds
    now: float


def window_of(rows: WindowRows, interactions: InteractionSettings) -> Window:
    """The window from its interactions as storage/trending.py reads them."""
    kinds = np.array(rows.kinds, dtype=object)[rows.kind_codes]
    weights = type_weights(kinds, rows.values, interactions)
    return Window(
        item_ids=rows.item_ids,
        categories=rows.categories,
        published=rows.published,
        items=rows.items,
        users=rows.users,
        weights=np.maximum(weights, 0).astype(np.float64),
        at=rows.at,
        now=rows.now,
    )


def scores(
    window: Window, variant: str, *, hours: float, half_life_hours: float, fresh_days: float
) -> dict[str, float]:
    """Score per item for one variant (see the module docstring for the formulas)."""
    values, scored = _scores(
        window, variant, hours=hours, half_life_hours=half_life_hours, fresh_days=fresh_days
    )
    return {window.item_ids[n]: float(values[n]) for n in np.flatnonzero(scored)}


def _scores(
    window: Window, variant: str, *, hours: float, half_life_hours: float, fresh_days: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per item code: its score, and whether the variant scores it at all (viral scores
    only the items with some positive weight)."""
    n = len(window.item_ids)
    age_hours = (window.now - window.at) / 3600.0
    present = np.bincount(window.items, minlength=n) > 0  # every item the window holds

    def summed(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.bincount(window.items, weights=values, minlength=n).astype(np.float64)

    if variant in ("hot", "fresh"):
        contribution = window.weights * np.power(0.5, age_hours / half_life_hours)
        if variant == "fresh":
            new = (window.now - window.published[window.items]) <= fresh_days * 86_400.0
            contribution = np.where(new, contribution, 0.0)
        return summed(contribution), present
    if variant == "rising":
        newer = age_hours < hours / 2
        e_new = summed(np.where(newer, window.weights, 0.0))
        e_old = summed(np.where(newer, 0.0, window.weights))
        return (e_new - e_old) / (e_old + 1) * np.log1p(e_new), present
    if variant == "viral":
        third = np.minimum((age_hours / (hours / 3)).astype(np.int64), 2)  # 0 newest .. 2 oldest
        positive = window.weights > 0
        n_users = int(window.users.max()) + 1 if len(window.users) else 1
        # Each (item, third, user) once: distinct users per item and third.
        cell = window.items[positive] * 3 + third[positive]
        pairs = np.unique(cell * n_users + window.users[positive])
        distinct = np.bincount(pairs // n_users, minlength=3 * n).reshape(n, 3)
        u0, u1, u2 = distinct[:, 0], distinct[:, 1], distinct[:, 2]
        # A shrinking audience can be "convex" too (5, 2, 1): only a growing one is viral.
        viral = np.where(u0 > u1, u0 - 2 * u1 + u2, 0).astype(np.float64)
        return viral, np.bincount(window.items[positive], minlength=n) > 0
    raise ValueError(f"unknown trending variant {variant!r}")


def ranked(
    window: Window, item_scores: dict[str, float], category: str | None, top: int = TOP
) -> list[tuple[str, float]]:
    """Items with a positive score, best first (ties by id), optionally of one category."""
    values = np.array([item_scores.get(item, 0.0) for item in window.item_ids], np.float64)
    keep = np.array([category is None or c == category for c in window.categories], bool)
    return _best(window, values, keep, top)


def _best(
    window: Window, values: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_], top: int
) -> list[tuple[str, float]]:
    """`ranked` by item code: the kept items with a positive score, best first, ties by id
    (an item's code orders as its id does)."""
    codes = np.flatnonzero(keep & (values > 0))
    if len(codes) > top:  # only the best `top` (and those tied with the last) are sorted
        cut = np.partition(values[codes], len(codes) - top)[len(codes) - top]
        codes = codes[values[codes] >= cut]
    order = codes[np.lexsort((codes, -values[codes]))][:top]
    return [(window.item_ids[c], float(values[c])) for c in order]


def all_lists(rows: WindowRows, settings: Settings, hours: int) -> TrendingLists:
    """Every variant, overall and per category, for one window's interactions."""
    window = window_of(rows, settings.interactions)
    names = sorted({c for c in window.categories if c})
    code = {name: n for n, name in enumerate(names)}
    item_category = np.array([code[c] if c else -1 for c in window.categories], np.int64)
    everything = np.ones(len(window.item_ids), dtype=bool)
    lists: TrendingLists = {}
    for variant in VARIANTS:
        values, _ = _scores(
            window,
            variant,
            hours=hours,
            half_life_hours=settings.index.trending_half_life_hours,
            fresh_days=settings.index.trending_fresh_days,
        )
        lists[(variant, None)] = _best(window, values, everything, TOP)
        for name in names:
            lists[(variant, name)] = _best(window, values, item_category == code[name], TOP)
    return lists


def hot_scores(lists: TrendingLists, version: IndexVersion) -> Trend | None:
    """The overall hot list as a score per row of `version` (None when it is empty)."""
    hot = lists.get(("hot", None), [])
    if not hot:
        return None
    scores = np.zeros(len(version.item_ids), dtype=np.float32)
    for item_id, score in hot:
        row = version.item_row.get(item_id)
        if row is not None:
            scores[row] = score
    return Trend.of(scores)
