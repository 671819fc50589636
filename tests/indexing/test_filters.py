"""Filter expressions, parsed once and evaluated with the contract's exact semantics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.filters import MAX_DEPTH, Filters, InvalidFilter, compile_filter

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)
FILM = {
    "item_id": "f1",
    "category": "Horror",
    "tags": ["ghosts", "kids"],
    "title": "The Haunting",
    "published_at": datetime(2025, 12, 31, tzinfo=UTC),
    "attributes": {"year": 1999, "in_stock": True, "studio": {"name": "Hammer"}, "langs": ["en"]},
}


def passes(text: str, item: dict[str, Any] = FILM) -> bool:
    predicate = compile_filter(text)
    assert predicate is not None
    return predicate(item, NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('category in ["Horror", "Thriller"] and attributes.year >= 1990', True),
        ('not tags contains "kids"', False),
        ('published_at >= "2024-01-01"', True),
        ("attributes.in_stock = true", True),
        # Keywords and field names are case-insensitive, values are not.
        ('CATEGORY = "Horror" AND Tags CONTAINS "ghosts"', True),
        ('category = "horror"', False),
        # Missing fields: every test is false, `not` turns it true.
        ('attributes.colour = "red"', False),
        ('attributes.colour != "red"', False),
        ('attributes.colour not in ["red"]', False),
        # `!=` and `not in`: false where nothing compares; on a list, no element equals.
        ('tags != "kids"', False),
        ('tags != "toys"', True),
        ('tags not in ["kids", "toys"]', False),
        ('attributes.year != "1999"', False),
        ('attributes.year not in ["a", 2000]', True),
        ('attributes.year not in ["a"]', False),
        ('not attributes.colour = "red"', True),
        ("attributes.colour exists", False),
        ("attributes.year exists", True),
        # Types: a boolean is never a number; 1990 equals 1990.0; mismatches are false.
        ("attributes.in_stock = 1", False),
        ("attributes.year = 1999.0", True),
        ('attributes.year = "1999"', False),
        ("attributes.year > 1.5e3", True),
        ("attributes.year > -5", True),
        # Lists: `=` and `in` on any element, `contains` one element; strings: a substring.
        ('tags = "kids"', True),
        ('tags in ["none", "ghosts"]', True),
        ('attributes.langs contains "en"', True),
        ('title contains "Haunt"', True),
        ('title contains "haunt"', False),
        # Times: a date is 00:00 UTC; now moves by hours and days.
        ('published_at = "2025-12-31"', True),
        ("published_at >= now - 32d", True),
        ("published_at >= now-30d", False),
        ("published_at < now + 2h", True),
        # Nested attributes; strings compare by code point.
        ('attributes.studio.name = "Hammer"', True),
        ('title < "Z"', True),
        # Precedence: and binds before or; parentheses regroup.
        ('category = "Comedy" and tags = "kids" or attributes.year = 1999', True),
        ('category = "Comedy" and (tags = "kids" or attributes.year = 1999)', False),
        ('title = "say \\"hi\\""', False),
    ],
)
def test_the_contracts_semantics(text: str, expected: bool) -> None:
    assert passes(text) is expected


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ('colour = "red"', 0),  # an unknown field
        ('category = "Horror', 11),  # an unclosed string
        ('title = "a\\nb"', 10),  # an unknown escape
        ('category = "Horror" and', 23),
        ('category in ["a" "b"]', 17),
        ("category = ", 11),
        ('category ~ "x"', 9),
        ('(category = "x"', 15),
        ('category = "x")', 14),
        ("published_at > now - 3w", 21),
        ("published_at > now + 1e6d", 21),  # beyond any calendar: refused, not a failure
        ("published_at > now - 1e12h", 21),
    ],
)
def test_a_malformed_filter_names_its_position(text: str, position: int) -> None:
    with pytest.raises(InvalidFilter) as raised:
        compile_filter(text)
    assert raised.value.status == 400 and raised.value.code == "invalid_filter"
    assert raised.value.details is not None
    assert raised.value.details[0]["position"] == position, raised.value.message


def test_limits_on_length_and_nesting() -> None:
    assert compile_filter("   ") is None  # an empty filter is no filter
    deep = "(" * MAX_DEPTH + 'category = "x"' + ")" * MAX_DEPTH
    with pytest.raises(InvalidFilter):
        compile_filter(deep)
    with pytest.raises(InvalidFilter):
        compile_filter("not " * (MAX_DEPTH + 1) + 'category = "x"')
    with pytest.raises(InvalidFilter):
        compile_filter('category = "' + "x" * 2_000 + '"')


def test_a_filter_is_compiled_once_per_text() -> None:
    filters = Filters(size=2)
    first = filters.compiled('category = "Horror"')
    assert filters.compiled('category = "Horror"') is first
    filters.compiled('category = "A"')
    filters.compiled('category = "B"')  # the first is dropped beyond two
    assert filters.compiled('category = "Horror"') is not first


# Pieces of filters, glued at random: mostly near-valid text, where a parser's mistakes hide.
PIECES = [
    *("category", "tags", "title", "item_id", "published_at", "attributes.a", "attributes.a.b"),
    *("=", "!=", "<", "<=", ">", ">=", "in", "not", "and", "or", "contains", "exists"),
    *("(", ")", "[", "]", ",", '"x"', '"\\""', '"\\\\"', '"', "\\", "1", "-2.5e3", "1e999"),
    *("true", "false", "now", "now - 3d", "now + 1h", "now -", "h", "d", " ", "\x00", "é"),
    *("now + 365000d", "now - 8760000h", "now + 1e308d"),
]


@settings(max_examples=2_000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=24).map(" ".join) | st.text(max_size=60))
def test_any_text_parses_or_is_refused_as_a_filter(text: str) -> None:
    """A filter is never anything but parsed or refused with a position inside it (a 400 at
    the API), and a parsed one evaluates on any item without failing."""
    try:
        found = compile_filter(text)
    except InvalidFilter as refused:
        assert refused.details is not None
        assert 0 <= refused.details[0]["position"] <= len(text)
        return
    if found is not None:
        for item in (FILM, {}, {"attributes": {"a": [1, "x", None]}, "tags": None}):
            assert found(item, NOW) in (True, False)
