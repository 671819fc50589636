"""The schema of an experiment variant's `params`, stated from what checks them.

`VariantIn.params` is a plain object in the model, since its keys are the ranking settings
(common/settings.py) and experiments/design.py checks it; the OpenAPI document names each key
and what its value may be, as that check does."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from common.settings import RankingSettings
from experiments.design import STRATEGIES


def params_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, setting in RankingSettings.model_json_schema()["properties"].items():
        # Its default is not what a variant without it gets: that is the served version's.
        properties[name] = {k: v for k, v in setting.items() if k not in ("default", "title")}
    properties["strategy"] = {"enum": list(STRATEGIES)}
    properties["index_version"] = {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 2**63 - 1}, {"type": "null"}],
        "description": "A kept index version that answers this variant's users.",
    }
    properties["scenario"] = {
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, {"type": "null"}],
        "description": "A scenario whose rules replace the request's for this variant's users.",
    }
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": "What the variant changes: ranking settings over the served "
        "version's, the strategy, a pinned index version, and a scenario.",
    }


def document_variant_params(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        schemas = spec.get("components", {}).get("schemas", {})
        if "VariantIn" in schemas:
            schemas["VariantIn"]["properties"]["params"] = params_schema()
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
