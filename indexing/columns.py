"""A filter evaluated over a whole catalog at once: one field's values as typed columns.

A `Column` holds one field's value for every item row, taken apart by type so that each test
of a filter (indexing/filters.py) is a few array comparisons, not a call per item: a catalog
of a million items is judged in milliseconds. Every value is one entry (a list, one per
element), and an entry is a number, a boolean, a string or none of those; strings are coded
by their rank in the sorted distinct strings, so `<` between strings compares codes; any
text that reads as ISO 8601, or a datetime, also has its time in microseconds. The
semantics are the row-wise evaluator's, exactly (tests/indexing/test_filter_columns.py
holds them to it).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from indexing.filters import (
    All,
    AnyOf,
    Filter,
    Node,
    Not,
    Path,
    Test,
    Value,
    as_time,
    resolve,
)

Mask = npt.NDArray[np.bool_]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OTHER, _BOOL, _NUMBER, _STRING = 0, 1, 2, 3


def micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Column:
    """One field of `n` rows: `present` rows hold a value (not missing, not null), `listed`
    ones a list, `text` ones a string. Entries: `owner` (their row), `kind`, `number`,
    `flag` (a boolean's), `code` (a string's rank in `strings`), `time` (microseconds,
    valid where `timed`)."""

    n: int
    present: Mask
    listed: Mask
    text: Mask
    owner: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int8]
    number: npt.NDArray[np.float64]
    flag: Mask
    code: npt.NDArray[np.int64]
    time: npt.NDArray[np.int64]
    timed: Mask
    strings: list[str]

    @classmethod
    def of(cls, n: int, values: Iterable[tuple[int, Any]]) -> Column:
        """The column of (row, value) pairs; rows not given are missing."""
        present, listed, text = (np.zeros(n, dtype=bool) for _ in range(3))
        owner: list[int] = []
        entries: list[Any] = []
        for row, value in values:
            if value is None:
                continue
            present[row] = True
            if isinstance(value, list):
                listed[row] = True
                owner.extend([row] * len(value))
                entries.extend(value)
            else:
                text[row] = isinstance(value, str)
                owner.append(row)
                entries.append(value)
        strings = sorted({e for e in entries if isinstance(e, str)})
        rank = {s: i for i, s in enumerate(strings)}
        m = len(entries)
        kind = np.zeros(m, dtype=np.int8)
        number = np.zeros(m, dtype=np.float64)
        flag = np.zeros(m, dtype=bool)
        code = np.full(m, -1, dtype=np.int64)
        time = np.zeros(m, dtype=np.int64)
        timed = np.zeros(m, dtype=bool)
        for at, entry in enumerate(entries):
            if isinstance(entry, bool):
                kind[at], flag[at] = _BOOL, entry
            elif isinstance(entry, int | float):
                if entry == entry:  # NaN compares with nothing
                    kind[at], number[at] = _NUMBER, float(entry)
            elif isinstance(entry, str):
                kind[at], code[at] = _STRING, rank[entry]
            found = as_time(entry)
            if found is not None:
                time[at], timed[at] = micros(found), True
        return cls(
            n,
            present,
            listed,
            text,
            np.array(owner, dtype=np.int64),
            kind,
            number,
            flag,
            code,
            time,
            timed,
            strings,
        )

    @property
    def nbytes(self) -> int:
        arrays = (self.present, self.listed, self.text, self.owner, self.kind, self.number)
        more = (self.flag, self.code, self.time, self.timed)
        strings = sum(len(s) for s in self.strings) + 56 * len(self.strings)
        return sum(a.nbytes for a in (*arrays, *more)) + strings

    def rows(self, entries: Mask) -> Mask:
        """The rows with any of `entries`."""
        found = np.zeros(self.n, dtype=bool)
        found[self.owner[entries]] = True
        return found

    def equal(self, value: Any) -> Mask:
        """Entries equal to `value` (resolved: a time for `now`)."""
        return self.compare("=", value)

    def typed(self, value: Any) -> Mask:
        """Entries that compare with `value` at all (of its type, as `compare` reads it)."""
        found: Mask = np.zeros(len(self.kind), dtype=bool)
        if as_time(value) is not None:
            found = self.timed.copy()
            if isinstance(value, str):
                found |= (self.kind == _STRING) & ~self.timed
        elif isinstance(value, bool):
            found = np.equal(self.kind, _BOOL)
        elif isinstance(value, int | float):
            if value == value:  # NaN compares with nothing
                found = np.equal(self.kind, _NUMBER)
        elif isinstance(value, str):
            found = np.equal(self.kind, _STRING)
        return found

    def compare(self, op: str, value: Any) -> Mask:
        """Entries for which `entry op value` holds (op: =, <, <=, >, >=), as the row-wise
        evaluator compares."""
        hit: Mask = np.zeros(len(self.kind), dtype=bool)
        value_time = as_time(value)
        if value_time is not None:
            hit = self.timed & _OPS[op](self.time, micros(value_time))
            if isinstance(value, str):  # text that is not a time compares as text
                hit |= (self.kind == _STRING) & ~self.timed & self._strings(op, value)
        elif isinstance(value, bool):
            if op == "=":
                hit = (self.kind == _BOOL) & _OPS[op](self.flag, value)
        elif isinstance(value, int | float):
            if value == value:  # NaN compares with nothing
                hit = (self.kind == _NUMBER) & _OPS[op](self.number, float(value))
        elif isinstance(value, str):
            hit = (self.kind == _STRING) & self._strings(op, value)
        return hit

    def _strings(self, op: str, value: str) -> Mask:
        """`code op value` for string entries, by the value's place among `strings`
        (meaningless for the others, which the caller masks off)."""
        at = bisect.bisect_left(self.strings, value)
        found = at < len(self.strings) and self.strings[at] == value
        code = self.code
        if op == "=":
            return code == at if found else np.zeros(len(code), dtype=bool)
        if op == "<":
            return code < at
        if op == "<=":
            return code < at + found
        if op == ">":
            return code >= at + found
        return code >= at

    def contains(self, value: Any) -> Mask:
        """Rows holding a list with an element equal to `value`, or text holding it."""
        inside = self.rows(self.equal(value)) & self.listed
        if isinstance(value, str) and len(self.strings):
            # Over the distinct strings, not the rows (nor a fixed-width copy of them all).
            holding = np.fromiter((value in s for s in self.strings), bool, len(self.strings))
            entries = (self.kind == _STRING) & holding[np.maximum(self.code, 0)]
            inside |= self.rows(entries) & self.text
        return inside


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": np.equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class Table(Protocol):
    """A catalog's columns, by field path, over `n` rows."""

    n: int

    def column(self, path: Path) -> Column: ...


def mask(found: Filter, table: Table, now: datetime) -> Mask:
    """The rows of `table` that pass the filter at `now`."""
    return _node(found.root, table, now)


def _node(node: Node, table: Table, now: datetime) -> Mask:
    if isinstance(node, Test):
        return _test(node, table.column(node.path), now)
    if isinstance(node, Not):
        inverted: Mask = ~_node(node.inner, table, now)
        return inverted
    parts = [_node(part, table, now) for part in node.parts]
    combine = np.logical_and if isinstance(node, All) else np.logical_or
    assert isinstance(node, All | AnyOf)
    combined: Mask = combine.reduce(parts)
    return combined


def _test(test: Test, column: Column, now: datetime) -> Mask:
    values: list[Value] = list(test.values)
    resolved = [resolve(v, now) for v in values]
    if test.op == "exists":
        return column.present.copy()
    if test.op == "contains":
        return column.contains(resolved[0])
    if test.op in ("in", "not in", "!="):
        entries = np.zeros(len(column.kind), dtype=bool)
        typed = np.zeros(len(column.kind), dtype=bool)
        for value in resolved:
            entries |= column.equal(value)
            typed |= column.typed(value)
        hit = column.rows(entries)
        # `!=` and `not in`: something of the field compares, and no element equals.
        return hit if test.op == "in" else column.rows(typed) & ~hit
    return column.rows(column.compare(test.op, resolved[0]))
