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
Items whose score is not positive are left out. Lists are computed overall and per category.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.settings import InteractionSettings, Settings
from indexing.artifacts import IndexVersion
from indexing.hybrid import Trend
from indexing.profiles import type_weights

VARIANTS = ("hot", "rising", "fresh", "viral")
TOP = 1_000
# (variant, category or None for all) -> items best first, with their scores
Lists = dict[tuple[str, str | None], list[tuple[str, float]]]


@dataclass(frozen=True)
class Window:
    item_ids: list[str]  # per interaction
    categories: list[str | None]
    published: np.ndarray  # epoch seconds per interaction's item (NaN if unknown)
    users: list[str]
    weights: np.ndarray
    at: np.ndarray  # epoch seconds
    now: float


def window_of(rows: Sequence[Any], interactions: InteractionSettings) -> Window:
    """The window from its interaction rows (storage/trending.py reads them): item_id,
    category, user_id, type, value, at, published and now (epoch seconds)."""
    now = rows[0]["now"] if rows else 0.0
    weights = type_weights([r["type"] for r in rows], [r["value"] for r in rows], interactions)
    return Window(
        item_ids=[r["item_id"] for r in rows],
        categories=[r["category"] for r in rows],
        published=np.array([r["published"] for r in rows], dtype=np.float64),
        users=[r["user_id"] for r in rows],
        weights=np.maximum(weights, 0).astype(np.float64),
        at=np.array([r["at"] for r in rows], dtype=np.float64),
        now=float(now),
    )


def scores(
    window: Window, variant: str, *, hours: float, half_life_hours: float, fresh_days: float
) -> dict[str, float]:
    """Score per item for one variant (see the module docstring for the formulas)."""
    if not window.item_ids:
        return {}
    age_hours = (window.now - window.at) / 3600.0
    ids = np.array(window.item_ids, dtype=object)
    if variant in ("hot", "fresh"):
        contribution = window.weights * np.power(0.5, age_hours / half_life_hours)
        if variant == "fresh":
            new = (window.now - window.published) <= fresh_days * 86_400.0
            contribution = np.where(new, contribution, 0.0)
        return _sum_by(ids, contribution)
    if variant == "rising":
        newer = age_hours < hours / 2
        e_new = _sum_by(ids, np.where(newer, window.weights, 0.0))
        e_old = _sum_by(ids, np.where(newer, 0.0, window.weights))
        return {
            item: (e_new.get(item, 0.0) - e_old.get(item, 0.0))
            / (e_old.get(item, 0.0) + 1)
            * float(np.log1p(e_new.get(item, 0.0)))
            for item in set(e_new) | set(e_old)
        }
    if variant == "viral":
        third = np.minimum((age_hours / (hours / 3)).astype(int), 2)  # 0 newest .. 2 oldest
        distinct: dict[str, list[set[str]]] = defaultdict(lambda: [set(), set(), set()])
        for item, user, t, w in zip(
            window.item_ids, window.users, third, window.weights, strict=True
        ):
            if w > 0:
                distinct[item][int(t)].add(user)
        # A shrinking audience can be "convex" too (5, 2, 1): only a growing one is viral.
        return {
            item: float(len(u[0]) - 2 * len(u[1]) + len(u[2])) if len(u[0]) > len(u[1]) else 0.0
            for item, u in distinct.items()
        }
    raise ValueError(f"unknown trending variant {variant!r}")


def _sum_by(ids: np.ndarray, values: np.ndarray) -> dict[str, float]:
    unique, inverse = np.unique(ids, return_inverse=True)
    totals = np.bincount(inverse, weights=values, minlength=len(unique))
    return {str(item): float(total) for item, total in zip(unique, totals, strict=True)}


def ranked(
    window: Window, item_scores: dict[str, float], category: str | None, top: int = TOP
) -> list[tuple[str, float]]:
    """Items with a positive score, best first (ties by id), optionally of one category."""
    if category is not None:
        in_category = {
            i for i, c in zip(window.item_ids, window.categories, strict=True) if c == category
        }
        item_scores = {i: s for i, s in item_scores.items() if i in in_category}
    positive = [(i, s) for i, s in item_scores.items() if s > 0]
    positive.sort(key=lambda pair: (-pair[1], pair[0]))
    return positive[:top]


def all_lists(rows: Sequence[Any], settings: Settings, hours: int) -> Lists:
    """Every variant, overall and per category, for one window's interaction rows."""
    window = window_of(rows, settings.interactions)
    categories: list[str | None] = [None, *sorted({c for c in window.categories if c})]
    lists: Lists = {}
    for variant in VARIANTS:
        item_scores = scores(
            window,
            variant,
            hours=hours,
            half_life_hours=settings.index.trending_half_life_hours,
            fresh_days=settings.index.trending_fresh_days,
        )
        for category in categories:
            lists[(variant, category)] = ranked(window, item_scores, category)
    return lists


def hot_scores(lists: Lists, version: IndexVersion) -> Trend | None:
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
