"""Why an item ranks where it does for a user: each source's score, weight and share.

The blend is the one behind the user's list (indexing/ranking.py), with the asked items
scored beside it where the list did not reach them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from common.errors import NotFound
from common.models import Explanation
from experiments.design import DEFAULT, Params
from indexing import explanations, hybrid, ranking
from indexing.artifacts import IndexVersion
from indexing.profiles import Profile
from service import profiles
from service.application import Application
from service.usecases import rules
from service.usecases.list_sources import Ask, rank_now


async def explain(
    app: Application, user_id: str, item_id: str, scenario: str | None = None
) -> Explanation:
    """Each source's raw and scaled score for the item, its trust and weight, and the
    item's rank in the user's default list; with a scenario, which of its boosters would
    move the item, and by how much in all (`boost`)."""
    kept_to = rules.rules_for(app, None, None, scenario)
    found = await _explain(app, user_id, item_id)
    if kept_to.boosters:
        # Each booster's filter judges the one item (no subset of the catalog is needed).
        applied = rules.Applied(kept_to, app.serving.current, None, datetime.now(UTC))
        _, moved_by = await rules.boosted(app, applied, [(item_id, found.score)])
        boosts = moved_by.get(item_id, [])
        found.components["boost"] = round(float(np.prod([b.weight for b in boosts])), 6)
        found.reasons += rules.boost_reasons(boosts)
    return found


async def _explain(app: Application, user_id: str, item_id: str) -> Explanation:
    version = app.serving.current
    if version is None or item_id not in version.item_row:
        raise NotFound(f"item {item_id!r} is not in the served index")
    profile = await profiles.current(app.redis, version, user_id, app.serving.profile_stamps)
    row = version.item_row[item_id]
    # The rank in the list the user gets by default, where seen items are left out.
    pairs, strategy = await rank_now(app, Ask(user_id, version, count=0), profile)
    rank = next((n for n, (i, _) in enumerate(pairs) if i == item_id), None)
    if strategy == "popular":
        top = float(version.popularity.max()) or 1.0
        popularity = float(version.popularity[row]) / top
        return Explanation(
            user_id=user_id,
            item_id=item_id,
            score=round(popularity, 6),
            rank=rank,
            components={"popularity": popularity},
            reasons=["popular right now"],
            index_version=version.version,
        )
    blended = await _blend(app, version, profile, [row])
    at = int(np.flatnonzero(blended.rows == row)[0])
    liked = ranking.rows_in_order(version, profile.liked)
    components: dict[str, float | None] = {}
    for source in hybrid.SOURCES:
        components[source] = round(float(blended.raw[source][at]), 6)
        components[f"{source}_scaled"] = round(float(blended.scaled[source][at]), 6)
        components[f"{source}_trust"] = round(blended.trust[source], 6)
        components[f"{source}_weight"] = round(blended.weights[source], 6)
    components["negative_push"] = round(float(blended.push[at]), 6)
    components["negative_weight"] = version.ranking(app.settings.ranking).negative_weight
    recent = liked[: app.settings.ranking.recent_items]
    return Explanation(
        user_id=user_id,
        item_id=item_id,
        score=round(float(blended.total[at]), 6),
        rank=rank,
        components=components,
        reasons=explanations.reasons(version, blended, at, liked, recent),
        index_version=version.version,
    )


async def reasons(
    app: Application,
    version: IndexVersion | None,
    profile: Profile,
    item_ids: list[str],
    strategy: str,
    params: Params = DEFAULT,
) -> dict[str, list[str]]:
    """Each item's reasons in words, for a list answered with `explain`."""
    if strategy.startswith("trending:"):
        said = f"trending now ({strategy.partition(':')[2]})"
        return {item_id: [said] for item_id in item_ids}
    if strategy == "popular" or version is None:
        return {}
    rows = [version.item_row[i] for i in item_ids if i in version.item_row]
    blended = await _blend(app, version, profile, rows, params)
    position = {int(r): n for n, r in enumerate(blended.rows)}
    liked = ranking.rows_in_order(version, profile.liked)
    recent = liked[: app.settings.ranking.recent_items]
    return {
        version.item_ids[r]: explanations.reasons(version, blended, position[r], liked, recent)
        for r in rows
    }


async def _blend(
    app: Application,
    version: IndexVersion,
    profile: Profile,
    extra: list[int],
    params: Params = DEFAULT,
) -> hybrid.Blend:
    """The blend behind the user's list (by default, or under a variant's `params`), with
    `extra` rows scored alongside."""
    settings = app.settings
    served = params.apply(version.ranking(settings.ranking))
    trend = app.trending.hot_scores(version)
    excluded = ranking.excluded_rows(version, profile, app.serving.deleted_rows(version), True)

    def scored() -> hybrid.Blend:
        blended = ranking.blend_for(
            version, profile, served, settings.index.ranking_depth, None, excluded, trend
        )
        known = set(blended.rows.tolist())
        missing = [r for r in extra if r not in known]
        if missing:
            rows = np.concatenate([blended.rows, np.array(missing, dtype=np.int64)])
            blended = ranking.blend_for(version, profile, served, 0, None, (), trend, only=rows)
        return blended

    return await app.rank(scored)
