"""The quality gate: a build that would serve worse answers does not go live by itself.

Everything the gate compares is measured on the build's own holdout, user by user, on the
same users (indexing/tuning.py): the build's hybrid (each half of the users ranked with
the weights chosen on the other half), the popular list, and the reference, which is the
active version's configuration (its chosen model settings and blend weights) refitted on
this same training split. Figures measured on other data are never compared: a harder
catalog is not a worse model.

A build is held back, as a `rejected` version an operator may still activate, when
  - its NDCG@10 does not beat the popular list's by more than noise: the lower bound
    mean(d) - Z * se(d) of the paired per-user gain d over popularity is not above 0
    (a build on shuffled interactions is popularity at best, and is refused), or
  - it falls below the reference beyond noise and `tolerance`: the upper bound
    mean(d) + Z * se(d) of its paired gain over the reference is below
    -tolerance * the reference's NDCG@10.
Neither rule keeps a version that cannot serve the catalog: with no active version, or
one whose items are mostly gone (deleted since it was built), the build goes live whatever
its figures, which the verdict still reports. With fewer than MIN_USERS judged users the
figures are noise, and it passes on trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Figures = npt.NDArray[np.float64]  # per judged user, the same users in every entry
MIN_USERS = 30
# One-sided 95%: a gain whose bound clears 0 is not noise.
Z = 1.645
# An active version with less than this share of its items still live serves little of the
# catalog: a build that knows the live catalog replaces it, whatever the figures.
LIVE_SHARE = 0.5
METRIC = "ndcg@10"


def paired(candidate: Figures, other: Figures) -> dict[str, float]:
    """The mean per-user gain of `candidate` over `other`, with its noise bounds."""
    gain = candidate - other
    noise = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("inf")
    mean = float(gain.mean()) if len(gain) else 0.0
    return {
        "gain": round(mean, 6),
        "low": round(mean - Z * noise, 6),
        "high": round(mean + Z * noise, 6),
    }


def judge(
    per_user: Mapping[str, Figures],
    tolerance: float,
    active_live_share: float | None,
) -> dict[str, Any]:
    """{"passed", "reason", "reasons", "figures"} (and "notes": what a build that goes live
    although it fell short fell short of) for a build whose judged users scored
    `per_user["hybrid"]`, `["popular"]` and, where a version is active, `["reference"]`.
    `active_live_share`: the share of the active version's items still live (None: no
    version is active)."""
    hybrid, popular = per_user.get("hybrid"), per_user.get("popular")
    if hybrid is None or popular is None or len(hybrid) < MIN_USERS:
        reason = "too few held-out users to judge"
        return {"passed": True, "reason": reason, "reasons": [], "figures": {}}
    figures: dict[str, Any] = {
        "users": len(hybrid),
        METRIC: round(float(hybrid.mean()), 6),
        f"popular_{METRIC}": round(float(popular.mean()), 6),
        "over_popular": paired(hybrid, popular),
    }
    reasons = []
    if figures["over_popular"]["low"] <= 0:
        reasons.append(
            f"held-out NDCG@10 {hybrid.mean():.4f} does not beat popularity's "
            f"{popular.mean():.4f} by more than noise (paired gain "
            f"{figures['over_popular']['gain']:+.4f}, lower bound "
            f"{figures['over_popular']['low']:+.4f})"
        )
    reference = per_user.get("reference")
    if reference is not None and len(reference) == len(hybrid):
        figures[f"reference_{METRIC}"] = round(float(reference.mean()), 6)
        figures["over_reference"] = paired(hybrid, reference)
        floor = -tolerance * float(reference.mean())
        if figures["over_reference"]["high"] < floor:
            reasons.append(
                f"held-out NDCG@10 {hybrid.mean():.4f} falls below the active configuration's "
                f"{reference.mean():.4f}, refitted on the same split, beyond noise and the "
                f"{tolerance:.0%} tolerance (paired gain {figures['over_reference']['gain']:+.4f},"
                f" upper bound {figures['over_reference']['high']:+.4f})"
            )
    if reasons and (active_live_share is None or active_live_share < LIVE_SHARE):
        held = (
            "no version is active"
            if active_live_share is None
            else (f"only {active_live_share:.0%} of the active version's items are still live")
        )
        figures["active_live_share"] = active_live_share
        return {
            "passed": True,
            "reason": f"goes live although {'; '.join(reasons)}: {held}",
            "reasons": [],
            "notes": reasons,
            "figures": figures,
        }
    if active_live_share is not None:
        figures["active_live_share"] = round(active_live_share, 4)
    reason = (
        "; ".join(reasons)
        if reasons
        else (
            "beats popularity beyond noise"
            + (
                ", and does not fall below the active configuration"
                if reference is not None
                else ""
            )
        )
    )
    return {"passed": not reasons, "reason": reason, "reasons": reasons, "figures": figures}
