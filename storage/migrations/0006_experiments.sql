-- A/B experiments. Variants (name, weight, params, control) are kept as one JSON list: they
-- are fixed once the experiment starts. `salt` makes each experiment's assignment its own.
CREATE TABLE experiments (
    experiment_id   text PRIMARY KEY,
    description     text,
    variants        jsonb NOT NULL,
    salt            text NOT NULL,
    guardrail       boolean NOT NULL DEFAULT false,
    -- Versions a variant pins: retention keeps them while the experiment runs.
    pinned_versions bigint[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    stopped_at      timestamptz,
    stop_reason     text,
    -- The latest results computed (by the worker's tick or a results request), for /metrics.
    last_results    jsonb,
    results_at      timestamptz
);

-- A variant taken out before its experiment ends (the guardrail), with the figures why.
CREATE TABLE experiment_variant_stops (
    experiment_id text NOT NULL REFERENCES experiments ON DELETE CASCADE,
    variant       text NOT NULL,
    stopped_at    timestamptz NOT NULL DEFAULT now(),
    reason        text NOT NULL,
    figures       jsonb NOT NULL,
    PRIMARY KEY (experiment_id, variant)
);

-- Each item shown to a user under an experiment: how often, first and last time. A click
-- (or another conversion type) by that user on it between the first showing and the last
-- one plus the attribution window is a conversion.
CREATE TABLE experiment_exposures (
    experiment_id  text NOT NULL REFERENCES experiments ON DELETE CASCADE,
    user_id        text NOT NULL,
    item_id        text NOT NULL,
    variant        text NOT NULL,
    impressions    integer NOT NULL,
    first_shown_at timestamptz NOT NULL,
    last_shown_at  timestamptz NOT NULL,
    PRIMARY KEY (experiment_id, user_id, item_id)
);

-- Impressions by the index version that answered: shows what a pinned variant served.
CREATE TABLE experiment_served (
    experiment_id text NOT NULL REFERENCES experiments ON DELETE CASCADE,
    variant       text NOT NULL,
    index_version bigint NOT NULL,
    impressions   bigint NOT NULL,
    PRIMARY KEY (experiment_id, variant, index_version)
);

-- How far the impression stream in Redis has been copied here. It moves in the same
-- transaction as the counts, so a flush that fails or runs twice counts nothing twice.
CREATE TABLE experiment_flush (
    stream  text PRIMARY KEY,
    last_id text NOT NULL
);
