"""Filter expressions: what an item must satisfy to appear in a list (../API.md, "Business
rules"), parsed once into a predicate over an item's fields.

    expr   := term ("or" term)*              term := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | test
    test   := field op value | field ["not"] "in" "[" value ("," value)* "]"
            | field "contains" value | field "exists"
    field  := item_id | category | tags | title | published_at | attributes.NAME(.NAME)*
    value  := "string" | number | true | false | now [("+" | "-") number ("h" | "d")]

Semantics: a test on a missing (or null) field is false, `not` negates a whole factor; values
of different types never compare (a boolean is not a number); a string that parses as ISO 8601
compares as a time (a date alone is 00:00 UTC, no zone is UTC); on a list field `=` and `in`
hold when any element matches and `contains` when one element equals the value, on a string
`contains` is a substring test. Keywords and field names are case-insensitive, values are not.
A filter is data to this module: it is evaluated here, never handed to a store as code.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from common.errors import ClientError

MAX_LENGTH = 2_000
MAX_DEPTH = 32
# How far `now` may move: beyond a few millennia a time is out of any calendar's range.
MAX_DAYS = 365_000
FIELDS = ("item_id", "category", "tags", "title", "published_at")
Item = Mapping[str, Any]


class InvalidFilter(ClientError):
    code = "invalid_filter"

    def __init__(self, position: int, expected: str, field: str = "filter") -> None:
        super().__init__(
            f"{field} is malformed at position {position}: expected {expected}",
            details=[{"field": field, "position": position, "expected": expected}],
        )
        self.position, self.expected = position, expected

    def named(self, field: str) -> InvalidFilter:
        """The same refusal, of the filter in `field` (a scenario's booster's, say)."""
        return InvalidFilter(self.position, self.expected, field)


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "number", "word", "op", "end"
    text: str
    position: int
    value: Any = None


_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
# A keyword or a field; only attribute names (after a dot) may hold a hyphen.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_\-]+)*")
_OPS = ("!=", "<=", ">=", "=", "<", ">", "(", ")", "[", "]", ",", "+", "-")


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char.isspace():
            at += 1
        elif char == '"':
            start, at, chars = at, at + 1, []
            while True:
                if at >= len(text):
                    raise InvalidFilter(start, "a closing quote")
                if text[at] == '"':
                    break
                if text[at] == "\\":
                    if at + 1 >= len(text) or text[at + 1] not in '"\\':
                        raise InvalidFilter(at, 'an escape of \\" or \\\\')
                    at += 1
                chars.append(text[at])
                at += 1
            found.append(_Token("string", text[start : at + 1], start, "".join(chars)))
            at += 1
        elif (char.isdigit() or char == "-") and (number := _NUMBER.match(text, at)):
            if char == "-" and found and found[-1].kind == "word" and found[-1].text == "now":
                found.append(_Token("op", "-", at))
                at += 1
                continue
            found.append(_Token("number", number.group(), at, float(number.group())))
            at = number.end()
        elif word := _WORD.match(text, at):
            found.append(_Token("word", word.group().lower(), at, word.group()))
            at = word.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, at)), None)
            if op is None:
                raise InvalidFilter(at, "a field, a value or an operator")
            found.append(_Token("op", op, at))
            at += len(op)
    found.append(_Token("end", "", len(text)))
    return found


@dataclass(frozen=True)
class Now:
    """`now`, moved by `seconds`: resolved at each request."""

    seconds: float


Value = str | float | bool | Now
Path = tuple[str, ...]


@dataclass(frozen=True)
class Test:
    """One test of a field: `op` is a comparison, "in", "not in", "contains" or "exists"."""

    path: Path
    op: str
    values: tuple[Value, ...] = ()

    def __call__(self, item: Item, now: datetime) -> bool:
        field = _get(item, self.path)
        if self.op == "exists":
            return field is not None
        values = [resolve(v, now) for v in self.values]
        if self.op == "contains":
            return _contains(field, values[0])
        if self.op == "in":
            return any(_COMPARE["="](field, v) for v in values)
        if self.op in ("!=", "not in"):
            # A test like the others: false where nothing of the field compares with the
            # values (missing, or of another type); else true where no element equals one,
            # so that `tags != "kids"` leaves out whatever is tagged kids.
            typed = any(_comparable(e, v) is not None for e in _elements(field) for v in values)
            return typed and not any(_COMPARE["="](field, v) for v in values)
        return _COMPARE[self.op](field, values[0])


@dataclass(frozen=True)
class Not:
    inner: Node

    def __call__(self, item: Item, now: datetime) -> bool:
        return not self.inner(item, now)


@dataclass(frozen=True)
class All:
    parts: tuple[Node, ...]

    def __call__(self, item: Item, now: datetime) -> bool:
        return all(part(item, now) for part in self.parts)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]

    def __call__(self, item: Item, now: datetime) -> bool:
        return any(part(item, now) for part in self.parts)


Node = Test | Not | All | AnyOf


@dataclass(frozen=True)
class Filter:
    """A parsed filter: called on an item's fields and the request's time, whether the item
    passes; `root` is its tree, for an evaluation over a whole catalog's columns at once
    (indexing/columns.py)."""

    text: str
    root: Node

    def __call__(self, item: Item, now: datetime) -> bool:
        return self.root(item, now)

    @cached_property
    def tests(self) -> tuple[Test, ...]:
        found: list[Test] = []
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Test):
                found.append(node)
            elif isinstance(node, Not):
                stack.append(node.inner)
            else:
                stack.extend(node.parts)
        return tuple(found)

    @cached_property
    def paths(self) -> frozenset[Path]:
        """The fields it reads."""
        return frozenset(test.path for test in self.tests)

    @cached_property
    def timed(self) -> bool:
        """Whether it says `now`: its answer moves with the clock."""
        return any(isinstance(v, Now) for test in self.tests for v in test.values)


def both(first: Filter | None, second: Filter | None) -> Filter | None:
    """Items that pass both filters (either may be None: no filter)."""
    if first is None or second is None:
        return first or second
    return Filter(f"({first.text}) and ({second.text})", All((first.root, second.root)))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.at += 1
            return token
        return None

    def expect(self, kind: str, text: str, expected: str) -> _Token:
        found = self.take(kind, text)
        if found is None:
            raise InvalidFilter(self.token.position, expected)
        return found

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(self.token.position, f"at most {MAX_DEPTH} levels of nesting")

    def expr(self) -> Node:
        self.deeper()
        terms = [self.term()]
        while self.take("word", "or"):
            terms.append(self.term())
        self.depth -= 1
        return terms[0] if len(terms) == 1 else AnyOf(tuple(terms))

    def term(self) -> Node:
        factors = [self.factor()]
        while self.take("word", "and"):
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else All(tuple(factors))

    def factor(self) -> Node:
        if self.take("word", "not"):
            self.deeper()
            inner = self.factor()
            self.depth -= 1
            return Not(inner)
        if self.take("op", "("):
            inner = self.expr()
            self.expect("op", ")", "')'")
            return inner
        return self.test()

    def test(self) -> Test:
        token = self.token
        if token.kind != "word" or not _is_field(token.text):
            raise InvalidFilter(token.position, f"a field ({', '.join(FIELDS)}, attributes.NAME)")
        self.at += 1
        path = _path(token.value)
        if self.take("word", "exists"):
            return Test(path, "exists")
        if self.take("word", "contains"):
            return Test(path, "contains", (self.value(),))
        negated = bool(self.take("word", "not"))
        if negated or self.token.text == "in":
            self.expect("word", "in", "'in'")
            return Test(path, "not in" if negated else "in", tuple(self.values()))
        op = self.token
        if op.kind != "op" or op.text not in (*_COMPARE, "!="):
            raise InvalidFilter(op.position, "an operator (=, !=, <, <=, >, >=, in, contains)")
        self.at += 1
        return Test(path, op.text, (self.value(),))

    def values(self) -> list[Value]:
        self.expect("op", "[", "'['")
        found = [self.value()]
        while self.take("op", ","):
            found.append(self.value())
        self.expect("op", "]", "']' or ','")
        return found

    def value(self) -> Value:
        token = self.token
        if token.kind in ("string", "number"):
            self.at += 1
            found: str | float = token.value
            return found
        if token.kind == "word" and token.text in ("true", "false"):
            self.at += 1
            return token.text == "true"
        if token.kind == "word" and token.text == "now":
            self.at += 1
            sign = self.take("op", "+") or self.take("op", "-")
            if sign is None:
                return Now(0.0)
            amount = self.token
            unit = self.tokens[min(self.at + 1, len(self.tokens) - 1)]
            if amount.kind != "number" or unit.kind != "word" or unit.text not in ("h", "d"):
                raise InvalidFilter(amount.position, "a number of hours (h) or days (d)")
            if abs(float(amount.value)) > MAX_DAYS * (24 if unit.text == "h" else 1):
                raise InvalidFilter(amount.position, f"at most {MAX_DAYS:,} days")
            self.at += 2
            return Now(_seconds(float(amount.value), unit.text, sign.text))
        raise InvalidFilter(token.position, "a value (a string, a number, true, false or now)")


def _seconds(amount: float, unit: str, sign: str) -> float:
    seconds = amount * (3_600 if unit == "h" else 86_400)
    return -seconds if sign == "-" else seconds


def _is_field(name: str) -> bool:
    return name in FIELDS or (name.startswith("attributes.") and len(name) > len("attributes."))


def _path(name: str) -> Path:
    """The keys to an item's field: attribute names keep their case."""
    parts = name.split(".")
    return (parts[0].lower(), *parts[1:])


def _get(item: Item, path: Path) -> Any:
    found: Any = item
    for key in path:
        if not isinstance(found, Mapping):
            return None
        found = found.get(key)
    return found


def resolve(value: Value, now: datetime) -> Any:
    """A value as tests compare it: `now` (moved) as a time."""
    return now + timedelta(seconds=value.seconds) if isinstance(value, Now) else value


def as_time(value: Any) -> datetime | None:
    """A value as a time, where it is one: a datetime, or text in ISO 8601."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-":
        try:
            found = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return found if found.tzinfo else found.replace(tzinfo=UTC)
    return None


def _comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Both sides in one type, or None where they do not compare."""
    left_time, right_time = as_time(left), as_time(right)
    if left_time is not None and right_time is not None:
        return left_time, right_time
    if isinstance(left, bool) or isinstance(right, bool):
        return (left, right) if isinstance(left, bool) and isinstance(right, bool) else None
    if isinstance(left, int | float) and isinstance(right, int | float):
        if math.isnan(left) or math.isnan(right):
            return None
        return float(left), float(right)
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    return None


def _elements(field: Any) -> list[Any]:
    """A field's values: a list's elements, or the one value."""
    return field if isinstance(field, list) else [field]


def _compare(test: Callable[[Any, Any], bool], ordered: bool) -> Callable[[Any, Any], bool]:
    def compare(field: Any, value: Any) -> bool:
        for element in _elements(field):
            pair = _comparable(element, value)
            if pair is None or (ordered and isinstance(pair[0], bool)):
                continue
            if test(*pair):
                return True
        return False

    return compare


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": _compare(lambda a, b: a == b, False),
    "<": _compare(lambda a, b: a < b, True),
    "<=": _compare(lambda a, b: a <= b, True),
    ">": _compare(lambda a, b: a > b, True),
    ">=": _compare(lambda a, b: a >= b, True),
}


def _contains(field: Any, value: Any) -> bool:
    if isinstance(field, list):
        return any(_comparable(e, value) is not None and _COMPARE["="](e, value) for e in field)
    if isinstance(field, str) and isinstance(value, str):
        return value in field
    return False


def compile_filter(text: str) -> Filter | None:
    """The parsed filter; None for an empty one (no filter). A malformed expression, an
    unknown field or escape raises InvalidFilter naming the 0-based position and what was
    expected there."""
    if len(text) > MAX_LENGTH:
        raise InvalidFilter(MAX_LENGTH, f"at most {MAX_LENGTH:,} characters")
    if not text.strip():
        return None
    parser = _Parser(text)
    root = parser.expr()
    if parser.token.kind != "end":
        raise InvalidFilter(parser.token.position, "'and', 'or' or the end of the filter")
    return Filter(text, root)


class Filters:
    """Compiled filters by their text, the least recently used dropped beyond `size`: a
    filter is parsed once however many requests send it."""

    def __init__(self, size: int = 1_024) -> None:
        self.size = size
        self._compiled: OrderedDict[str, Filter | None] = OrderedDict()

    def compiled(self, text: str) -> Filter | None:
        if text in self._compiled:
            self._compiled.move_to_end(text)
            return self._compiled[text]
        predicate = compile_filter(text)
        self._compiled[text] = predicate
        if len(self._compiled) > self.size:
            self._compiled.popitem(last=False)
        return predicate
