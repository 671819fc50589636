"""The JSON schemas of ids, texts and attributes refuse exactly what the checks in
common/models.py refuse, judged by a JSON Schema validator (jsonschema_rs, the one schemathesis
uses), so that a string a client sends by the OpenAPI document is never refused."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import jsonschema_rs
import pytest
from pydantic import TypeAdapter, ValidationError

from common.models import ID_PATTERN, TEXT_PATTERN, Id, InteractionIn, ItemIn, Tag

TRICKY = [
    "",
    "a",
    "/",
    "a/b",
    "/a",
    "a/",
    "\\",
    "%2F",
    " ",
    "   ",
    " leading",
    "trailing ",
    "tab\there",
    "new\nline",
    "end\n",
    "\r",
    "\x00",
    "nul\x00inside",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9f",
    "\xa0",
    "\u00ad",
    "\u200b",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffd",
    "\U0010ffff",
    "é",
    "e\u0301",
    "日本語",
    "😀",
    "👩‍👩‍👧",
    ".",
    "..",
    "?",
    "#",
    "a b?c#d",
    "x" * 127,
    "x" * 128,
    "x" * 129,
    "😀" * 128,
    "😀" * 129,
]
# Lone surrogates cannot travel in a UTF-8 request.
CODE_POINTS = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def accepts(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("kind", "adapter"), [("id", TypeAdapter(Id)), ("tag", TypeAdapter(Tag))])
@pytest.mark.parametrize("value", TRICKY)
def test_the_schema_and_the_check_agree(kind: str, adapter: TypeAdapter[str], value: str) -> None:
    schema = jsonschema_rs.validator_for(adapter.json_schema())
    assert schema.is_valid(value) == accepts(adapter, value), (kind, value)


def test_the_patterns_hold_the_checks_on_every_code_point() -> None:
    """Over all of Unicode: an id refuses a character exactly when it is '/' or a control
    character (category Cc), and a text exactly when it is NUL."""
    ids = jsonschema_rs.validator_for({"type": "string", "pattern": ID_PATTERN})
    assert [c for c in CODE_POINTS if not ids.is_valid(c)] == [
        c for c in CODE_POINTS if c == "/" or unicodedata.category(c) == "Cc"
    ]
    texts = jsonschema_rs.validator_for({"type": "string", "pattern": TEXT_PATTERN})
    assert [c for c in CODE_POINTS if not texts.is_valid(c)] == ["\x00"]


def test_a_refused_character_anywhere_fails_the_whole_string() -> None:
    for pattern, bad in ((ID_PATTERN, "/"), (TEXT_PATTERN, "\x00")):
        schema = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        for value in (bad, bad + "x", "x" + bad, "x" + bad + "x", "x" + bad + "\n"):
            assert not schema.is_valid(value), (pattern, value)


def body(**fields: Any) -> dict[str, Any]:
    return {"item_id": "i", "title": "T"} | fields


@pytest.mark.parametrize(
    "item",
    [
        body(),
        body(item_id="日本 語.."),
        body(item_id="a/b"),
        body(item_id="a\tb"),
        body(item_id="x" * 129),
        body(title="nul\x00"),
        body(tags=["ok", "b\x00d"]),
        body(category="\x00"),
        body(attributes={"k": "ok", "n": 1, "f": 1.5, "l": [None, True, {"x": "y"}]}),
        body(attributes={"": "", "deep": {"a": {"b": {"c": []}}}}),
        body(attributes={"big": 2**63 - 1, "small": -(2**63)}),
        body(attributes={"big": 2**63}),
        body(attributes={"small": -(2**63) - 1}),
        body(attributes={"k\x00": 1}),
        body(attributes={"k": "v\x00"}),
        body(attributes={"k": [{"deep\x00": 1}]}),
        body(attributes={"k": [["v\x00"]]}),
    ],
)
def test_an_item_the_schema_allows_is_an_item_the_model_takes(item: dict[str, Any]) -> None:
    schema = jsonschema_rs.validator_for(ItemIn.model_json_schema())
    assert schema.is_valid(item) == accepts(TypeAdapter(ItemIn), item)


@pytest.mark.parametrize("name", ["user_id", "item_id", "event_id"])
def test_interaction_ids_state_the_id_rule(name: str) -> None:
    schema = InteractionIn.model_json_schema()["properties"][name]
    string = next(branch for branch in schema.get("anyOf", [schema]) if branch.get("type"))
    assert string["pattern"] == ID_PATTERN and "allOf" not in string
    assert (string["minLength"], string["maxLength"]) == (1, 128)
