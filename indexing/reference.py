"""What the quality gate holds a build to besides popularity: the active version's
configuration (the model settings and blend weights its build chose) refitted on the new
build's own training split, and scored on the same held-out users (indexing/gate.py).

The split's first fit used the configured model settings; only the models whose settings
the active configuration changed are fitted again, and only where their first fit says the
refit fits in `seconds`. A model that would not is taken from the first fit, and the
reference says so (`kept`): at 1,000,000 items one EASE refit takes a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from common.settings import CollaborativeSettings, RankingSettings, Settings
from common.snapshot import Snapshot
from indexing import fitting, holdout, ranking
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative

K = 10
# The settings behind each model the reference may refit.
PARTS: dict[str, tuple[str, ...]] = {
    "ease": ("item_evidence", "ease_lambda", "ease_max_items", "ease_neighbours"),
    "cooccurrence": ("item_evidence", "neighbours", "shrinkage"),
    "collaborative": ("factors", "regularization", "alpha", "iterations"),
}


def configuration(
    chosen: Mapping[str, Any], settings: Settings
) -> tuple[CollaborativeSettings, RankingSettings]:
    """The model settings and blend weights a version's manifest says it chose, over the
    configured ones (a setting an older release did not record keeps its configured value)."""
    known_models = CollaborativeSettings.model_fields
    models = {k: v for k, v in chosen.get("collaborative", {}).items() if k in known_models}
    known_weights = RankingSettings.model_fields
    weights = {k: v for k, v in chosen.get("ranking", {}).items() if k in known_weights}
    return (
        settings.collaborative.model_copy(update=models),
        settings.ranking.model_copy(update=weights),
    )


def per_user(
    version: IndexVersion,
    first: Collaborative,
    train: Snapshot,
    strength: sp.csr_matrix,
    settings: Settings,
    chosen: Mapping[str, Any],
    users: list[int],
    truth: Mapping[int, set[int]],
    seconds: float,
    evidence_of: Callable[[Snapshot, Settings], sp.csr_matrix],
) -> tuple[dict[int, float], dict[str, Any]]:
    """Each user's NDCG@10 under the active configuration `chosen`, ranked on `version`
    with the models of the split's first fit (`first`, under the configured settings)
    refitted where `chosen` differs; `version` is left as it was. Also what was refitted."""
    models, weights = configuration(chosen, settings)
    served = version.collaborative
    configured = settings.collaborative
    if models.half_life_days != configured.half_life_days:
        strength = evidence_of(train, settings.model_copy(update={"collaborative": models}))
        changed = list(PARTS)
    else:
        changed = [
            part
            for part, names in PARTS.items()
            if any(getattr(models, n) != getattr(configured, n) for n in names)
        ]
    # Parts refitted together: EASE and the cosine count evidence one way, never one of
    # each (the row sums read both by the same rule).
    joint = ["ease", "cooccurrence"] if models.item_evidence != configured.item_evidence else []
    units = ([joint] if joint else []) + [[part] for part in changed if part not in joint]
    refitted: list[str] = []
    kept: list[str] = []
    model, budget = first, seconds
    for unit in units:
        cost = sum(first.fit_seconds.get(part, 0.0) for part in unit)
        if cost > budget:
            kept += unit
            continue
        budget -= cost
        for part in unit:
            model = fitting.refit(model, part, strength, models, settings.index)
        refitted += unit
    measured = version.manifest
    try:
        version.collaborative = replace(model, half_life_days=models.half_life_days)
        depth = settings.index.ranking_depth
        typical = ranking.typical(version, settings.ranking, depth)
        version.manifest = measured | {"typical": typical}
        lists = holdout.rank_all(version, settings, weights, users, K)
    finally:
        version.collaborative, version.manifest = served, measured
    scores = {u: holdout.ndcg_of(lists[u], truth[u], K) for u in users}
    return scores, {"refitted": refitted, "kept": kept, "ndcg@10": _mean(scores)}


def _mean(scores: Mapping[int, float]) -> float:
    return round(float(np.mean(list(scores.values()))), 6) if scores else 0.0
