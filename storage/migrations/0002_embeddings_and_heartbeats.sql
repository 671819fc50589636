-- Item vectors by encoder, so an item whose text did not change is never embedded again.
CREATE TABLE item_embeddings (
    encoder      text NOT NULL,
    item_id      text NOT NULL,
    content_hash text NOT NULL,
    vector       bytea NOT NULL,
    embedded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (encoder, item_id)
);

-- A running build proves it is alive; one silent for too long lost its worker.
ALTER TABLE builds ADD COLUMN heartbeat_at timestamptz;

CREATE SEQUENCE index_version_seq;
