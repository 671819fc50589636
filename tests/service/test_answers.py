"""The answer cache stays within its bytes and lets entries expire unread."""

from __future__ import annotations

import sys

import pytest

from service import answers
from service.answers import AnswerCache, size_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(answers.time, "monotonic", fake)
    return fake


def ranked(n: int) -> answers.Ranked:
    return [(f"item-{i:05d}", float(i)) for i in range(n)], "hybrid"


def test_entries_expire_whether_or_not_they_are_read_again(clock: Clock) -> None:
    cache = AnswerCache(ttl=60.0)
    for n in range(100):
        cache.put((f"user-{n}", 1, None, True), ranked(50))
    assert len(cache) == 100
    clock.now += 61
    cache.put(("late", 1, None, True), ranked(50))
    assert len(cache) == 1 and cache.bytes == size_of(("late", 1, None, True), ranked(50))
    assert cache.get(("user-0", 1, None, True)) is None


def test_the_cache_holds_at_most_its_bytes_dropping_the_oldest(clock: Clock) -> None:
    one = size_of(("user-0000", 1, None, True), ranked(200))
    cache = AnswerCache(max_bytes=10 * one)
    for n in range(1000):
        cache.put((f"user-{n:04d}", 1, None, True), ranked(200))
        assert cache.bytes <= 10 * one
    assert len(cache) == 10
    assert cache.get(("user-0999", 1, None, True)) is not None
    assert cache.get(("user-0989", 1, None, True)) is None


def test_storing_again_and_dropping_keep_the_count_of_bytes(clock: Clock) -> None:
    cache = AnswerCache()
    key = ("u", 1, None, True)
    for _ in range(5):
        cache.put(key, ranked(20))
    cache.put(("u", 1, "horror", True), ranked(10))
    assert cache.bytes == size_of(key, ranked(20)) + size_of(("u", 1, "horror", True), ranked(10))
    cache.drop(["u"])
    assert cache.bytes == 0 and len(cache) == 0


def test_the_estimate_is_near_what_python_holds() -> None:
    pairs, _ = ranked(200)
    held = sys.getsizeof(pairs) + sum(
        sys.getsizeof(p) + sys.getsizeof(p[0]) + sys.getsizeof(p[1]) for p in pairs
    )
    estimate = size_of(("u", 1, None, True), (pairs, "hybrid"))
    assert 0.8 * held <= estimate <= 1.5 * held
