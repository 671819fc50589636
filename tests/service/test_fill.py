"""A short list is filled from live popularity (service/fill.py)."""

from __future__ import annotations

from service.fill import filled

POPULAR = [("p1", 50.0), ("seen", 40.0), ("a", 30.0), ("p2", 0.5), ("p3", 0.0)]


def test_a_short_list_is_filled_with_what_it_lacks_and_scores_still_fall() -> None:
    ranked = [("a", 2.0), ("b", 1.0)]
    out = filled(ranked, 5, POPULAR, {"seen"}, {"nothing"})
    assert [i for i, _ in out] == ["a", "b", "p1", "p2", "p3"]
    assert [s for _, s in out] == [2.0, 1.0, 1.0, 0.5, 0.0]
    # A list long enough is left as it is; an empty one is popularity's own.
    assert filled(ranked, 2, POPULAR) == ranked
    assert filled([], 2, POPULAR, {"p1"}) == [("seen", 40.0), ("a", 30.0)]
    # Fewer popular items than asked for: as many as there are.
    assert len(filled([], 10, POPULAR)) == len(POPULAR)
