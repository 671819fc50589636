-- Users' lists ranked after a version went live, in parts (indexing/precompute.py): each
-- part is a file beside the version's own in the object store, recorded here once it is
-- uploaded, so that every API process, however late it starts, folds in the same parts.
CREATE TABLE version_lists (
    version     bigint NOT NULL REFERENCES index_versions,
    part        integer NOT NULL CHECK (part > 0),
    name        text NOT NULL,
    sha256      text NOT NULL,
    bytes       bigint NOT NULL,
    users       integer NOT NULL,
    ranked_with jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version, part)
);
