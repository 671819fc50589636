"""The session protocol (indexing/sessions.py): sessions are each user's newest training
items, and a session ranked as the endpoint ranks it finds their genre where Pop cannot."""

from __future__ import annotations

import numpy as np

from common.settings import load_settings
from indexing import holdout, sessions
from indexing.build import fit
from tests.indexing.test_generalization import catalog_snapshot


def test_a_session_is_the_users_newest_items_oldest_first() -> None:
    snapshot = catalog_snapshot("view")
    found = sessions.sessions_of(snapshot, [3, 7], 5)
    for user, touched in found.items():
        theirs = np.flatnonzero(snapshot.user_rows == user)
        newest = theirs[np.argsort(snapshot.times[theirs])][-5:]
        assert touched == newest.tolist()
        assert list(snapshot.times[touched]) == sorted(snapshot.times[touched])


def test_sessions_ranked_as_served_beat_popularity_on_the_same_sessions() -> None:
    snapshot = catalog_snapshot("view")
    settings = load_settings()
    train, truth = holdout.split(snapshot, settings)
    quick = settings.model_copy(
        update={"index": settings.index.model_copy(update={"tune_seconds": 0.0})}
    )
    version, _ = fit(train, quick)
    figures = sessions.evaluate(version, quick, train, truth, k=10, size=5)
    assert figures["hybrid"]["users"] == figures["Pop"]["users"] > 50
    assert figures["hybrid"]["ndcg@10"] > 2 * figures["Pop"]["ndcg@10"]
    assert {"ItemKNN", "EASE l=100"} <= set(figures)
