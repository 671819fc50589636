-- Business rules. Filters judge an item changed since the served copy of the catalog by its
-- current fields, found by when it changed; scenarios are stored placements of rules.
CREATE INDEX items_updated_at ON items (updated_at);
CREATE INDEX items_deleted_at ON items (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE scenarios (
    scenario_id text PRIMARY KEY CHECK (length(scenario_id) BETWEEN 1 AND 128),
    -- The scenario as PUT, validated (common/models.py, ScenarioIn).
    body        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
