"""The quality gate: a build that would serve worse answers does not go live by itself.

A build is judged on its own holdout (indexing/tuning.py reports the figures). It is held
back, as a `rejected` version that an operator may still activate, when
  - its hybrid NDCG@10 is not above the popular list's on the same users, or
  - its hybrid NDCG@10 is below the active version's by more than `tolerance` (a fraction).
With fewer than MIN_USERS held-out users the figures are noise, and it passes on trust; so
do both rules when the build and the popular list found fewer than MIN_HITS held-out
positives between them (a large catalog of sparse histories, or a first build on little
data): figures near 0 cannot tell which list is better, nor whether the build fell short
of the active version's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIN_USERS = 30
MIN_HITS = 20
METRIC = "ndcg@10"


def judge(
    metrics: Mapping[str, Any], active: Mapping[str, Any] | None, tolerance: float
) -> dict[str, Any]:
    """{"passed": bool, "reasons": [...], and the figures compared}."""
    hybrid, popular = metrics.get("hybrid"), metrics.get("popular")
    if not hybrid or not popular or hybrid.get("users", 0) < MIN_USERS:
        return {"passed": True, "reasons": ["too few held-out users to judge"]}
    figures: dict[str, Any] = {"ndcg@10": hybrid[METRIC], "popular_ndcg@10": popular[METRIC]}
    reasons, notes = [], []
    hits = hybrid.get("users_hit", MIN_HITS) + popular.get("users_hit", MIN_HITS)
    if hits < MIN_HITS:
        notes.append(f"only {hits:.0f} held-out hits between the build and popularity")
    elif hybrid[METRIC] <= popular[METRIC]:
        reasons.append(
            f"held-out NDCG@10 {hybrid[METRIC]:.4f} is not above popularity's {popular[METRIC]:.4f}"
        )
    previous = (active or {}).get("hybrid", {}).get(METRIC)
    if previous is not None:
        figures["active_ndcg@10"] = previous
        floor = previous * (1.0 - tolerance)
        if hybrid[METRIC] < floor:
            said = (
                f"held-out NDCG@10 {hybrid[METRIC]:.4f} is below the active version's "
                f"{previous:.4f} by more than {tolerance:.0%}"
            )
            if hits < MIN_HITS:
                notes.append(said + ", but with too few hits to tell")
            else:
                reasons.append(said)
    verdict = {"passed": not reasons, "reasons": reasons, **figures, "tolerance": tolerance}
    return verdict | ({"notes": notes} if notes else {})
