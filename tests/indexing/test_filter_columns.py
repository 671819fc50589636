"""The compiled filter, row by row and over a catalog's columns, against a plain evaluator
of the contract's semantics, on random expressions and items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing import columns
from indexing.filters import compile_filter

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)

# Small pools, so that tests often hold and values of every type meet each other.
STRINGS = ["a", "b", "ab", "B", "2025-12-31", "2026-01-30T10:00:00", "2026-02-01", 'x"y']
SCALARS: list[Any] = [*STRINGS, 0, 1, 1.0, 2.5, -3, 1e3, True, False]
FIELDS = ["category", "title", "tags", "published_at", "attributes.n", "attributes.s.t"]


def _scalar() -> st.SearchStrategy[Any]:
    return st.sampled_from(SCALARS)


def _value() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), _scalar(), st.lists(_scalar(), max_size=3), st.just({"k": 1}))


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {"item_id": draw(st.sampled_from(["i1", "i2", "2026-01-01"]))}
    item["category"] = draw(st.one_of(st.none(), st.sampled_from(STRINGS)))
    item["title"] = draw(st.sampled_from(STRINGS))
    item["tags"] = draw(st.lists(st.sampled_from(STRINGS), max_size=3))
    item["published_at"] = draw(
        st.one_of(
            st.none(), st.sampled_from([datetime(2025, 12, 31, tzinfo=UTC), NOW, "2026-02-01"])
        )
    )
    item["attributes"] = {"n": draw(_value()), "s": draw(st.sampled_from([None, {"t": 2}, 3]))}
    return item


@dataclass(frozen=True)
class Literal:
    text: str  # as the filter writes it
    value: Any  # as the plain evaluator reads it


LITERALS = [Literal('"' + s.replace('"', '\\"') + '"', s) for s in STRINGS] + [
    Literal("1", 1.0),
    Literal("1.0", 1.0),
    Literal("-3", -3.0),
    Literal("2.5e0", 2.5),
    Literal("true", True),
    Literal("FALSE", False),
    Literal("now", NOW),
    Literal("now - 1d", NOW - timedelta(days=1)),
    Literal("now + 36h", NOW + timedelta(hours=36)),
]


@st.composite
def filter_tests(draw: st.DrawFn) -> tuple[str, Any]:
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains"]))
    if draw(st.integers(0, 9)) == 0:
        return f"{field} EXISTS", ("exists", field)
    if op in ("in", "not in"):
        chosen = draw(st.lists(st.sampled_from(LITERALS), min_size=1, max_size=3))
        text = f"{field} {op} [{', '.join(v.text for v in chosen)}]"
        return text, (op, field, [v.value for v in chosen])
    literal = draw(st.sampled_from(LITERALS))
    return f"{field} {op} {literal.text}", (op, field, literal.value)


def expressions(depth: int = 3) -> st.SearchStrategy[tuple[str, Any]]:
    return st.recursive(
        filter_tests(),
        lambda inner: st.one_of(
            # `not` binds tighter than `and`: a bare test needs no parentheses.
            st.tuples(inner).map(
                lambda e: (
                    f"NOT {e[0][0]}" if e[0][1][0] not in ("and", "or") else f"not ({e[0][0]})",
                    ("not", e[0][1]),
                )
            ),
            st.tuples(inner, inner).map(
                lambda e: (f"({e[0][0]}) and ({e[1][0]})", ("and", e[0][1], e[1][1]))
            ),
            st.tuples(inner, inner).map(
                lambda e: (f"{e[0][0]} OR {e[1][0]}", ("or", e[0][1], e[1][1]))
            ),
        ),
        max_leaves=6,
    )


# The plain evaluator: the contract's words, one rule at a time.


def _field(item: dict[str, Any], name: str) -> Any:
    found: Any = item
    for key in name.split("."):
        found = found.get(key) if isinstance(found, dict) else None
    return found


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _holds(op: str, left: Any, right: Any) -> bool:
    """One scalar against one value: false where the types differ."""
    if _as_time(left) is not None and _as_time(right) is not None:
        left, right = _as_time(left), _as_time(right)
    elif isinstance(left, bool) != isinstance(right, bool):
        return False
    elif isinstance(left, bool):
        if op not in ("=", "!="):
            return False
    elif isinstance(left, int | float) and isinstance(right, int | float):
        pass
    elif not (isinstance(left, str) and isinstance(right, str)):
        return False
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _typed(left: Any, right: Any) -> bool:
    """Whether the two compare at all (their types agree, as the contract reads them)."""
    if left is None:
        return False
    if _as_time(left) is not None and _as_time(right) is not None:
        return True
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(left, int | float) and isinstance(right, int | float):
        return True
    return isinstance(left, str) and isinstance(right, str)


def _any(op: str, field: Any, value: Any) -> bool:
    elements = field if isinstance(field, list) else [field]
    return any(e is not None and _holds(op, e, value) for e in elements)


def evaluate(tree: Any, item: dict[str, Any]) -> bool:
    kind = tree[0]
    if kind == "not":
        return not evaluate(tree[1], item)
    if kind == "and":
        return evaluate(tree[1], item) and evaluate(tree[2], item)
    if kind == "or":
        return evaluate(tree[1], item) or evaluate(tree[2], item)
    field = _field(item, tree[1])
    if kind == "exists":
        return field is not None
    if field is None:
        return False
    if kind == "in":
        return any(_any("=", field, v) for v in tree[2])
    elements = field if isinstance(field, list) else [field]
    if kind in ("!=", "not in"):
        # Something compares, and nothing equals: tags != "kids" leaves out what is tagged kids.
        values = tree[2] if kind == "not in" else [tree[2]]
        typed = any(_typed(e, v) for e in elements for v in values)
        return typed and not any(_any("=", field, v) for v in values)
    if kind == "contains":
        if isinstance(field, list):
            return _any("=", field, tree[2])
        return isinstance(field, str) and isinstance(tree[2], str) and tree[2] in field
    return _any(kind, field, tree[2])


@dataclass
class Catalog:
    n: int
    items: list[dict[str, Any]]

    def column(self, path: tuple[str, ...]) -> columns.Column:
        name = ".".join(path)
        return columns.Column.of(self.n, ((r, _field(i, name)) for r, i in enumerate(self.items)))


@settings(max_examples=400, deadline=None)
@given(expression=expressions(), catalog=st.lists(items(), min_size=1, max_size=8))
def test_compiled_filters_agree_with_the_plain_evaluator(
    expression: tuple[str, Any], catalog: list[dict[str, Any]]
) -> None:
    text, tree = expression
    compiled = compile_filter(text)
    assert compiled is not None
    expected = [evaluate(tree, item) for item in catalog]
    assert [compiled(item, NOW) for item in catalog] == expected, text
    judged = columns.mask(compiled, Catalog(len(catalog), catalog), NOW)
    assert judged.tolist() == expected, text


def test_a_large_catalog_is_judged_in_array_work() -> None:
    """The columns' point: one pass of array work per test, whatever the catalog's size."""
    n = 200_000
    values = [(r, r % 100) for r in range(n)]
    table = Catalog(n, [])
    number = columns.Column.of(n, values)
    table.column = lambda path: number  # type: ignore[method-assign]
    found = compile_filter("attributes.n < 3 or attributes.n = 50")
    assert found is not None
    passed = columns.mask(found, table, NOW)
    assert int(passed.sum()) == n // 100 * 4
    assert np.array_equal(np.flatnonzero(passed)[:5], [0, 1, 2, 50, 100])
