"""Trending scores on hand-built windows whose right answers follow from the module's formulas.

Every window is 24 hours long with a 6-hour half-life and a 2-day freshness cutoff, so the
rising halves split at 12 hours ago and the viral thirds at 8 and 16 hours ago.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

from common.settings import load_settings
from common.window import WindowRows
from indexing.trending import VARIANTS, Window, all_lists, ranked, scores, window_of

NOW = 1_700_000_000.0
HOUR = 3_600.0
DAY = 86_400.0


class Event(NamedTuple):
    item: str
    hours_ago: float
    weight: float = 1.0
    user: str = "u"
    category: str | None = "c"
    published_days_ago: float = 0.0


def window(*events: Event) -> Window:
    """The window of these events: items and users as codes, items in id order."""
    item_ids = sorted({e.item for e in events})
    code = {item: n for n, item in enumerate(item_ids)}
    categories: list[str | None] = [None] * len(item_ids)
    published = np.full(len(item_ids), np.nan)
    for e in events:
        categories[code[e.item]] = e.category
        published[code[e.item]] = NOW - e.published_days_ago * DAY
    users: dict[str, int] = {}
    return Window(
        item_ids=item_ids,
        categories=categories,
        published=published,
        items=np.array([code[e.item] for e in events], dtype=np.int64),
        users=np.array([users.setdefault(e.user, len(users)) for e in events], dtype=np.int64),
        weights=np.maximum([e.weight for e in events], 0.0).astype(np.float64),
        at=np.array([NOW - e.hours_ago * HOUR for e in events]),
        now=NOW,
    )


def score(variant: str, *events: Event) -> dict[str, float]:
    return scores(window(*events), variant, hours=24, half_life_hours=6, fresh_days=2)


def top_ids(variant: str, *events: Event) -> list[str]:
    return [item for item, _ in ranked(window(*events), score(variant, *events), None)]


def test_hot_halves_each_weight_every_half_life() -> None:
    # 2 now, 4 one half-life ago, 8 two half-lives ago: each decays to 2.
    got = score("hot", Event("a", 0, 2.0), Event("a", 6, 4.0), Event("a", 12, 8.0))
    assert got == {"a": pytest.approx(6.0)}


def test_hot_prefers_a_recent_small_engagement_to_an_older_larger_one() -> None:
    # b's 3 is two half-lives old, worth 0.75 < 1; undecayed, or with a longer half-life, b wins.
    assert top_ids("hot", Event("a", 0, 1.0), Event("b", 12, 3.0)) == ["a", "b"]


def test_rising_compares_the_newer_half_with_the_older_damped_by_new_engagement() -> None:
    # 11 hours ago is in the newer half, 13 in the older: (3 - 1) / (1 + 1) * ln(1 + 3).
    got = score("rising", Event("a", 11, 3.0), Event("a", 13, 1.0))
    assert got == {"a": pytest.approx(math.log(4))}


def test_rising_damps_items_with_little_engagement() -> None:
    # Nothing old, so growth alone is E_new; ln(1 + E_new) shrinks 0.5 far more than 3.
    got = score("rising", Event("small", 1, 0.5), Event("big", 1, 3.0))
    assert got["small"] == pytest.approx(0.5 * math.log(1.5))
    assert got["big"] == pytest.approx(3 * math.log(4))


def test_rising_ranks_an_item_growing_from_little_above_a_bigger_steady_one() -> None:
    events = [Event("grows", 20, 1.0), Event("grows", 2, 4.0)]  # 3/2 * ln 5 = 2.41
    events += [Event("steady", 20, 10.0), Event("steady", 2, 12.0)]  # 2/11 * ln 13 = 0.47
    events += [Event("flat", 20, 5.0), Event("flat", 2, 5.0)]  # no growth: 0, left out
    assert top_ids("rising", *events) == ["grows", "steady"]


def test_fresh_is_hot_restricted_to_items_published_within_fresh_days() -> None:
    got = score(
        "fresh",
        Event("new", 6, 2.0, published_days_ago=47 / 24),  # inside 2 days: hot's 2 * 0.5
        Event("old", 0, 10.0, published_days_ago=49 / 24),  # outside: 0 despite most engagement
        Event("unknown", 0, 10.0, published_days_ago=math.nan),  # no date: not known to be new
    )
    assert got == {"new": pytest.approx(1.0), "old": 0.0, "unknown": 0.0}


def test_fresh_leaves_out_an_old_item_even_with_the_most_engagement() -> None:
    events = [Event("old", 0, 100.0, published_days_ago=3), Event("new", 0, 1.0)]
    assert top_ids("fresh", *events) == ["new"]
    assert top_ids("hot", *events) == ["old", "new"]


def test_viral_is_the_second_difference_of_distinct_users_per_third() -> None:
    # Oldest third (16-24 h ago) 1 user, middle (8-16 h) 2, newest (0-8 h) 5: 5 - 2*2 + 1 = 2.
    events = [Event("a", 20, user="o1")]
    events += [Event("a", 12, user=f"m{n}") for n in range(2)]
    events += [Event("a", 2, user=f"n{n}") for n in range(5)]
    assert score("viral", *events) == {"a": pytest.approx(2.0)}


def test_viral_ranks_accelerating_above_steady_and_decelerating() -> None:
    def users(item: str, oldest: int, middle: int, newest: int) -> list[Event]:
        counts = ((20, oldest), (12, middle), (2, newest))
        return [Event(item, h, user=f"{h}-{n}") for h, count in counts for n in range(count)]

    events = users("accel", 1, 2, 5)  # 5 - 4 + 1 = 2
    events += users("steady", 3, 3, 3)  # 0: left out
    events += users("decel", 1, 4, 5)  # 5 - 8 + 1 = -2, though it grows most overall
    events += users("fading", 5, 2, 1)  # 1 - 4 + 5 = 2 is convex, but its audience shrinks
    assert score("viral", *events)["decel"] == pytest.approx(-2.0)
    assert score("viral", *events)["fading"] == 0.0
    assert top_ids("viral", *events) == ["accel"]


def test_viral_counts_a_user_once_per_third_and_ignores_non_positive_weights() -> None:
    # u three times in the newest third is one user; v and w weigh nothing, so none count.
    events = [Event("a", h, user="u") for h in (1, 3, 7)]
    events += [Event("a", 2, -1.0, user="v"), Event("a", 2, 0.0, user="w")]
    assert score("viral", *events) == {"a": pytest.approx(1.0)}


def test_ranked_keeps_positive_scores_best_first_ties_by_id_up_to_top() -> None:
    item_scores = {"b": 1.0, "a": 1.0, "c": 2.0, "zero": 0.0, "neg": -1.0}
    w = window(*(Event(i, 0) for i in item_scores))
    assert ranked(w, item_scores, None) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]
    assert ranked(w, item_scores, None, top=2) == [("c", 2.0), ("a", 1.0)]


def test_ranked_filters_by_category() -> None:
    w = window(
        Event("x1", 0, category="x"), Event("y1", 0, category="y"), Event("n", 0, category=None)
    )
    item_scores = {"x1": 3.0, "y1": 2.0, "n": 1.0}
    assert ranked(w, item_scores, "x") == [("x1", 3.0)]
    assert ranked(w, item_scores, None) == [("x1", 3.0), ("y1", 2.0), ("n", 1.0)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_scores_items_in_the_window(variant: str) -> None:
    assert set(score(variant, Event("a", 1), Event("b", 2, user="v"))) == {"a", "b"}


def test_unknown_variant_raises() -> None:
    with pytest.raises(ValueError, match="unknown trending variant"):
        score("cold", Event("a", 0))


def test_every_list_is_the_ranking_of_its_variants_scores() -> None:
    """all_lists, by item code, against scores and ranked, by id, on a random window."""
    settings = load_settings()
    rng = np.random.default_rng(7)
    ids = [f"{prefix}-{n}" for prefix in ("Item", "item", "b") for n in range(15)]
    category = {i: [None, "x", "y", "Z"][n % 4] for n, i in enumerate(ids)}
    kinds = ["view", "purchase", "rating", "dislike"]
    n = 600
    item = rng.choice(ids, n)
    kind = rng.integers(0, len(kinds), n)
    values = np.where(kind == 2, rng.integers(1, 6, n).astype(np.float64), np.nan)
    at = NOW - rng.uniform(0, 24, n) * HOUR
    users = rng.integers(0, 40, n)
    distinct = sorted(set(item.tolist()))
    code = {i: c for c, i in enumerate(distinct)}
    rows = WindowRows(
        item_ids=distinct,
        categories=[category[i] for i in distinct],
        published=NOW - rng.uniform(0, 4, len(distinct)) * DAY,
        kinds=kinds,
        items=np.array([code[i] for i in item.tolist()], dtype=np.int64),
        users=users.astype(np.int64),
        kind_codes=kind.astype(np.int64),
        values=values,
        at=at,
        now=NOW,
    )
    lists = all_lists(rows, settings, 24)
    window = window_of(rows, settings.interactions)
    assert window.weights.min() == 0.0 and window.weights.max() > 0  # dislikes count as 0
    names = [None, "Z", "x", "y"]  # code point order: "Z" before "x"
    assert {c for _, c in lists} == set(names)
    for variant in VARIANTS:
        item_scores = scores(
            window,
            variant,
            hours=24,
            half_life_hours=settings.index.trending_half_life_hours,
            fresh_days=settings.index.trending_fresh_days,
        )
        for name in names:
            expected = ranked(window, item_scores, name)
            got = lists[(variant, name)]
            assert [i for i, _ in got] == [i for i, _ in expected], (variant, name)
            assert [s for _, s in got] == pytest.approx([s for _, s in expected])
        assert lists[(variant, None)], variant
