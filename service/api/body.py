"""JSON bodies validated straight from bytes by pydantic, for the bulk endpoints.

FastAPI decodes a body with the standard json module and then validates the Python objects;
for a 10,000-row batch that is twice the work of `model_validate_json`. Routes that take
large bodies use `json_body(Model)` instead, and `document_bodies` puts the models back in
the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_DOCUMENTED: set[type[BaseModel]] = set()


def json_body(model: type[M]) -> params.Depends:
    async def parse(request: Request) -> M:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = [
                {**error, "loc": ("body", *error["loc"])}
                for error in exc.errors(include_url=False, include_context=False)
            ]
            raise RequestValidationError(errors) from exc

    _DOCUMENTED.add(model)
    guard: params.Depends = Depends(parse)
    return guard


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose body is `json_body(model)`."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def document_bodies(app: FastAPI, enums: dict[tuple[str, str], list[str]] | None = None) -> None:
    """Put the `json_body` models in the OpenAPI document, and the values of fields whose
    choices come from settings (`enums`: (schema, property) -> values)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in _DOCUMENTED:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        for (name, field), values in (enums or {}).items():
            schemas[name]["properties"][field]["enum"] = values
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
