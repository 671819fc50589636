"""What a list keeps to: a category, a filter and a scenario's rules (../API.md, "Business
rules"), resolved against the version that answers.

Every list use case asks the same thing here: `rules_for` parses the request's filter once
(kept per text) and joins it to its scenario's, `resolve` turns the rules into the version's
rows that pass, judged by the items' fields now (service/catalog_fields.py), and `keep` and
`filled` apply them to lists of ids that did not come from a search kept to those rows
(trending lists, live popularity). Retrieval itself keeps to the rows (indexing/subsets.py),
so a filter that few items pass still answers full lists. `boosted` reorders a list by the
scenario's boosters.

A booster acts on a positive, order-preserving transform of the score,
    t(s) = exp((s - max s) / spread),  spread the std of the list's scores (1 where flat),
which the weights of the boosters an item passes multiply; t's inverse gives the answered
score, s + spread * ln(product of weights). So a weight above 1 raises an item by as many
spreads as ln(weight) says, never lowers one, and the scale of the scores does not matter.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from indexing import filters
from indexing.artifacts import IndexVersion
from indexing.filters import Filter
from indexing.subsets import Subset
from service import fill
from service.application import Application
from service.scenarios import Boost, Placement

Pairs = list[tuple[str, float]]


@dataclass(frozen=True)
class Rules:
    """Items in `category` (when given) that pass `filter` (when given: the request's and
    its scenario's together), under the `scenario`'s other rules."""

    category: str | None = None
    filter: Filter | None = None
    scenario: Placement | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """Names the rules in caches of answers."""
        scenario = self.scenario
        return (
            self.category,
            self.filter.text if self.filter else None,
            (scenario.scenario_id, scenario.stamp) if scenario else None,
        )

    @property
    def narrowing(self) -> bool:
        return self.category is not None or self.filter is not None

    @property
    def boosters(self) -> tuple[Boost, ...]:
        return self.scenario.boosters if self.scenario else ()

    @property
    def reads_fields(self) -> bool:
        """Whether items' fields decide the list (so it is stale once one changes)."""
        return self.filter is not None or self.category is not None or bool(self.boosters)


NO_RULES = Rules()


def rules_for(
    app: Application,
    category: str | None,
    filter_text: str | None,
    scenario_id: str | None = None,
) -> Rules:
    """The request's rules. A malformed filter is an InvalidFilter (400) naming where; an
    unknown scenario, UnknownScenario (404)."""
    own = app.filters.compiled(filter_text) if filter_text else None
    placement = app.scenarios.find(scenario_id) if scenario_id else None
    placed = placement.filter if placement else None
    return Rules(category, filters.both(placed, own), placement)


@dataclass(frozen=True)
class Applied:
    """Rules resolved for one request: `subset` the version's rows that pass (None: all)."""

    rules: Rules
    version: IndexVersion | None
    subset: Subset | None
    now: datetime

    def admits(self, row: int) -> bool:
        return self.subset is None or bool(self.subset.member[row])


async def resolve(app: Application, rules: Rules, version: IndexVersion | None) -> Applied:
    now = datetime.now(UTC)
    if version is None or not rules.narrowing:
        return Applied(rules, version, None, now)
    subset = await app.catalog_fields.subset(version, rules.filter, rules.category, now)
    return Applied(rules, version, subset, now)


async def keep(app: Application, applied: Applied, pairs: Pairs) -> Pairs:
    """The pairs whose items pass the rules now, in order."""
    if not applied.rules.narrowing or not pairs:
        return pairs
    passing = await app.catalog_fields.passing(
        applied.version,
        applied.subset,
        applied.rules.filter,
        applied.rules.category,
        [i for i, _ in pairs],
        applied.now,
    )
    return [pair for pair in pairs if pair[0] in passing]


async def filled(
    app: Application, applied: Applied, pairs: Pairs, count: int, *excluded: Collection[str]
) -> Pairs:
    """`pairs` filled up to `count` (service/fill.py): from live popularity as far as it
    passes the rules; then, where rules narrow the catalog, from the version's items that
    pass, the most popular first, then the rest of them (so that a filter many items pass
    answers full lists, whatever they were engaged with)."""
    if len(pairs) >= count:
        return pairs
    popular = await keep(app, applied, app.trending.popular(applied.rules.category))
    pairs = fill.filled(pairs, count, popular, *excluded)
    version, subset = applied.version, applied.subset
    if len(pairs) >= count or version is None or subset is None:
        return pairs
    deleted = app.serving.deleted_rows(version)
    ids = version.item_ids
    shown = {i for i, _ in pairs}
    engaged = subset.engaged(version.popularity)
    rest: Pairs = []
    for found in itertools.chain(engaged, subset.rows):  # arrays read only as far as needed
        row = int(found)
        item_id = ids[row]
        if row in deleted or item_id in shown or any(item_id in e for e in excluded):
            continue
        shown.add(item_id)
        rest.append((item_id, float(version.popularity[row])))
        if len(pairs) + len(rest) >= count:
            break
    return fill.filled(pairs, count, rest)


async def boosted(
    app: Application, applied: Applied, pairs: Pairs
) -> tuple[Pairs, dict[str, list[Boost]]]:
    """`pairs` reordered by the scenario's boosters (see the module's docstring), and for
    each item a booster moved, which ones did. They reorder the first
    INDEX_PRECOMPUTE_DEPTH pairs, whatever page is asked, so that pages of one list never
    overlap; any after those follow as they were (their scores capped)."""
    boosters = [b for b in applied.rules.boosters if b.weight != 1.0]
    if not boosters or not pairs:
        return pairs, {}
    window = app.settings.index.precompute_depth
    pairs, rest = pairs[:window], pairs[window:]
    ids = [item_id for item_id, _ in pairs]
    factor = np.ones(len(pairs), dtype=np.float64)
    moved_by: dict[str, list[Boost]] = {}
    fields, version = app.catalog_fields, applied.version
    for boost in boosters:
        subset = None
        if version is not None:
            subset = await fields.subset(version, boost.filter, None, applied.now)
        passing = await fields.passing(version, subset, boost.filter, None, ids, applied.now)
        for n, item_id in enumerate(ids):
            if item_id in passing:
                factor[n] *= boost.weight
                moved_by.setdefault(item_id, []).append(boost)
    scores = np.array([score for _, score in pairs], dtype=np.float64)
    spread = float(scores.std()) or 1.0
    moved = scores + spread * np.log(factor)
    order = sorted(range(len(pairs)), key=lambda n: (-moved[n], n))
    reordered = [(ids[n], float(moved[n])) for n in order]
    last = reordered[-1][1]
    return reordered + [(i, min(score, last)) for i, score in rest], moved_by


def boosted_depth(app: Application, rules: Rules, count: int) -> int:
    """How deep a list is found and filled: with boosters, as deep as they reorder (the
    first INDEX_PRECOMPUTE_DEPTH items, as deep as a kept list holds), else the page's
    end."""
    return max(count, app.settings.index.precompute_depth) if rules.boosters else count


def boost_reasons(moved_by: list[Boost]) -> list[str]:
    """What `explain` says of the boosters that moved an item."""
    return [f"boosted x{boost.weight:g} by {boost.filter.text}" for boost in moved_by]
