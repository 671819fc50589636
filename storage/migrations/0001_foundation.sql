-- The catalog, users, their interactions, credentials, and the bookkeeping of index builds.

CREATE TABLE items (
    item_id      text PRIMARY KEY CHECK (length(item_id) BETWEEN 1 AND 128),
    title        text NOT NULL,
    description  text,
    category     text,
    tags         text[] NOT NULL DEFAULT '{}',
    attributes   jsonb NOT NULL DEFAULT '{}',
    published_at timestamptz,
    -- sha256 of the text the encoder sees; an unchanged hash is never embedded again.
    content_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Deleted items keep their row so that interaction history is never lost.
    deleted_at   timestamptz
);
CREATE INDEX items_live_category ON items (category, item_id) WHERE deleted_at IS NULL;

CREATE TABLE users (
    user_id    text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
    attributes jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- No foreign keys: their per-row triggers cost more than half of a bulk insert. Items and
-- users are never removed (items are only marked deleted), and every write checks both in
-- its own transaction.
CREATE TABLE interactions (
    interaction_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       text UNIQUE CHECK (length(event_id) BETWEEN 1 AND 128),
    user_id        text NOT NULL,
    item_id        text NOT NULL,
    type           text NOT NULL,
    value          double precision,
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX interactions_user_time ON interactions (user_id, occurred_at);
CREATE INDEX interactions_time ON interactions (occurred_at);

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    -- sha256 of the token: tokens are 256-bit random strings, so a fast hash is enough.
    token_sha256 bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE index_versions (
    version    bigint PRIMARY KEY CHECK (version > 0),
    state      text NOT NULL CHECK (state IN ('ready', 'deleted')),
    created_at timestamptz NOT NULL DEFAULT now(),
    items      integer NOT NULL,
    users      integer NOT NULL,
    manifest   jsonb NOT NULL,
    metrics    jsonb NOT NULL DEFAULT '{}'
);

-- One row: the version every API process serves. Changing it is one UPDATE.
CREATE TABLE active_index (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL REFERENCES index_versions,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE builds (
    build_id    text PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    stage       text NOT NULL DEFAULT 'queued',
    progress    real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    reason      text,
    force       boolean NOT NULL DEFAULT false,
    error       text,
    version     bigint REFERENCES index_versions,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
-- At most one build queued or running at a time.
CREATE UNIQUE INDEX builds_one_in_flight ON builds ((true)) WHERE state IN ('queued', 'running');
