-- What the client side needs: lists named by a recommendation_id that an interaction carries
-- back, erasure tombstones, and batch exports.

-- The list an interaction came from, when the client says so (its answer's recommendation_id).
ALTER TABLE interactions ADD COLUMN recommendation_id text
    CHECK (length(recommendation_id) BETWEEN 1 AND 128);

-- Each list shown under a running experiment, by its recommendation_id: an interaction that
-- names one is a conversion of that list's variant exactly when the list held the item.
CREATE TABLE experiment_lists (
    recommendation_id text PRIMARY KEY,
    experiment_id     text NOT NULL REFERENCES experiments ON DELETE CASCADE,
    variant           text NOT NULL,
    user_id           text NOT NULL,
    item_ids          text[] NOT NULL,
    shown_at          timestamptz NOT NULL
);
CREATE INDEX experiment_lists_user ON experiment_lists (user_id);

-- An erased user's exposures keep counting under a pseudonym; whether the user had
-- converted is fixed at erasure, since their interactions are gone.
ALTER TABLE experiment_exposures ADD COLUMN converted boolean NOT NULL DEFAULT false;
CREATE INDEX experiment_exposures_user ON experiment_exposures (user_id);

-- One row per erased user id, kept by the id's SHA-256 so that the id itself is gone too:
-- an interaction for that id timestamped at or before `erased_at` that arrives later (a
-- redelivery, a retried batch) is dropped. `pseudonym` stands for the user in the
-- experiment figures their impressions still count in.
CREATE TABLE erasures (
    user_hash bytea PRIMARY KEY,
    erased_at timestamptz NOT NULL,
    pseudonym text NOT NULL
);
CREATE INDEX erasures_time ON erasures (erased_at);

-- Batch exports: lists for many users or items, written as JSON lines to the object store.
CREATE TABLE exports (
    export_id   text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('recommendations', 'similar_items')),
    -- The request as posted (ids, limit, filter, scenario), validated.
    request     jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    progress    double precision NOT NULL DEFAULT 0,
    rows        bigint NOT NULL DEFAULT 0,
    -- How many ids there are to export, fixed when the export starts.
    total       bigint,
    error       text,
    -- The file is written in parts (exports/<export_id>/part-00001.jsonl, ...): `parts` are
    -- written, and the next starts after `resume_after` (the last id written, or for listed
    -- ids how many of them). A worker that takes the export over goes on from there.
    parts       integer NOT NULL DEFAULT 0,
    resume_after text,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    -- Written by the worker while it runs; a running export whose heartbeat stops is re-queued.
    heartbeat_at timestamptz
);
CREATE INDEX exports_created ON exports (created_at DESC);
