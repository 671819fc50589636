"""The configuration reference, docs/configuration.md, rendered from `Settings`.

    .venv/bin/python -m common.settings_doc          # write docs/configuration.md
    .venv/bin/python -m common.settings_doc --check  # exit 1 if it is out of date

Every environment variable a process reads, with its type, its default and what it does.
What it does is the field's `description` where one is set, else the comment lines right
above the field in common/settings.py; a section's introduction is its class docstring. So
the reference says what the code says, and tests/common/test_configuration_doc.py holds the
file to this rendering.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from common.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
COMMAND = ".venv/bin/python -m common.settings_doc"
# Section titles that a class name does not spell as people do.
TITLES = {
    "Api": "API",
    "Rate": "Rate limits",
    "Interaction": "Interactions",
    "Experiment": "Experiments",
}


def render(settings: type[BaseModel] = Settings) -> str:
    """docs/configuration.md as `settings` (the service's `Settings`) describes it now."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from common/settings.py: edit the settings' comments there, not this",
        f"file, then run `{COMMAND}`. -->",
        "",
        *_paragraph(inspect.getdoc(sys.modules[settings.__module__]) or ""),
        "",
        "Lists and objects are JSON. A variable that is not set takes the default shown.",
        "",
    ]
    fields = settings.model_fields
    general = [(name, field) for name, field in fields.items() if not _section(field)]
    if general:
        lines += ["## General", ""]
        lines += [entry for name, field in general for entry in _entry(settings, "", name, field)]
        lines.append("")
    for field in fields.values():
        section = _section(field)
        if section is None:
            continue
        prefix = str(section.model_config.get("env_prefix") or "")
        title = section.__name__.removesuffix("Settings")
        title = TITLES.get(title, title)
        lines.append(f"## {title}" + (f" (`{prefix}*`)" if prefix else ""))
        lines.append("")
        intro = vars(section).get("__doc__")  # its own docstring, not one it inherits
        if intro:
            lines += [*_paragraph(inspect.cleandoc(intro)), ""]
        for name, inner in section.model_fields.items():
            lines += _entry(section, prefix, name, inner)
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _section(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _entry(owner: type[BaseModel], prefix: str, name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias if isinstance(field.validation_alias, str) else None
    variable = (alias or prefix + name).upper()
    said = field.description or _comments(owner).get(name, "")
    head = (
        f"- **`{variable}`**: {_type(field.annotation, field.metadata)}, default {_default(field)}."
    )
    if not said:
        return [head]
    return [head, *textwrap.wrap(said, 96, initial_indent="  ", subsequent_indent="  ")]


def _paragraph(text: str) -> list[str]:
    """A docstring as Markdown: its paragraphs joined into lines, blank lines kept."""
    return [" ".join(block.replace("``", "`").split()) for block in text.split("\n\n")]


def _comments(owner: type[BaseModel]) -> dict[str, str]:
    """Each field of `owner` whose definition has comment lines right above it, and those
    lines joined (a blank line, or code, ends the comment)."""
    found: dict[str, str] = {}
    for cls in reversed(owner.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):  # a class with no source to read: no comments
            continue
        lines = source.splitlines()
        for name, line in _fields(ast.parse(source)):
            above: list[str] = []
            n = line - 2
            while n >= 0 and lines[n].strip().startswith("#"):
                above.insert(0, lines[n].strip().removeprefix("#").strip())
                n -= 1
            if above:
                found[name] = " ".join(above)
    return found


def _fields(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Each field a class in `tree` annotates, and the line it starts on."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    yield statement.target.id, statement.lineno


def _type(annotation: Any, metadata: list[Any]) -> str:
    said = _kind(annotation)
    bounds = _bounds(metadata)
    return f"{said} ({bounds})" if bounds else said


def _kind(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], list(args[1:]))
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        return " or ".join(_kind(a) for a in kept) + (", optional" if len(kept) < len(args) else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is dict:
        return f"JSON object of {_plural(args[1])}" if args else "JSON object"
    if origin in (list, tuple, set, frozenset):
        if origin is tuple and args and Ellipsis not in args:
            return f"JSON list of {len(args)} {_plural(args[0])}"
        return f"JSON list of {_plural(args[0])}" if args else "JSON list"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        SecretStr: "secret string",
        Path: "path",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(annotation: Any) -> str:
    kind = _kind(annotation)
    return {"number": "numbers", "integer": "integers", "string": "strings"}.get(kind, kind)


# Each bound a field's metadata may hold: its type, the attribute with its value, and how
# the reference says it.
_BOUNDS = (
    (Ge, "ge", "≥ {}"),
    (Gt, "gt", "> {}"),
    (Le, "le", "≤ {}"),
    (Lt, "lt", "< {}"),
)


def _bounds(metadata: list[Any]) -> str:
    said = []
    for rule in metadata:
        bound = next((b for b in _BOUNDS if isinstance(rule, b[0])), None)
        if bound is not None:
            said.append(bound[2].format(_number(getattr(rule, bound[1]))))
        elif isinstance(rule, MinLen):
            said.append(f"length ≥ {rule.min_length}")
        elif isinstance(rule, MaxLen):
            said.append(f"length ≤ {rule.max_length}")
        elif getattr(rule, "pattern", None):
            said.append(f"matching `{rule.pattern}`")
    return ", ".join(said)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "none (required)"
    else:
        value = field.default
    if value is None:
        return "unset"
    return f"`{_plain(value)}`"


def _plain(value: Any) -> str:
    """A value as it would be written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(_jsonable(value), separators=(",", ":"))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _number(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != rendered:
            print(f"{DOC} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(rendered)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
