"""Fitting the models a version's sources serve from: every registered source's at a build,
one source's again while the build's tuning searches its settings."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import scipy.sparse as sp

from common.settings import CollaborativeSettings, IndexSettings
from indexing import sources
from indexing.collaborative import Collaborative
from indexing.sources.base import Sequences, Training


def fit(
    evidence: sp.csr_matrix,
    settings: CollaborativeSettings,
    index: IndexSettings,
    sequences: Sequences | None = None,
) -> Collaborative:
    """Fit every registered source's model on a users x items evidence matrix, and what
    follows what on `sequences` (indexing/sources/sequence.py, `sequences_of`; none:
    nothing follows anything)."""
    training = Training(evidence, settings, index, sequences)
    parts: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for source in sources.REGISTRY:
        started = time.perf_counter()
        fitted = source.fit(training)
        if fitted:
            parts |= fitted
            seconds[source.name] = time.perf_counter() - started
    return Collaborative(**parts, half_life_days=settings.half_life_days, fit_seconds=seconds)


def refit(
    model: Collaborative,
    source: str,
    evidence: sp.csr_matrix,
    settings: CollaborativeSettings,
    index: IndexSettings,
) -> Collaborative:
    """`model` with the part behind `source` (one whose settings the build searches: ease,
    cooccurrence or collaborative) refitted on `evidence` under `settings`: the build's
    tuning tries one setting at a time."""
    refitted = sources.named(source)
    if not refitted.searched:
        raise ValueError(f"the {source} source has no model the build searches")
    fitted = refitted.fit(Training(evidence, settings, index))
    return replace(model, **fitted, half_life_days=settings.half_life_days)
