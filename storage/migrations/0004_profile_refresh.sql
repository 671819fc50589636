-- Users whose stored profile is behind their interactions. A row is written in the same
-- transaction as the interactions and removed only once the profile is refreshed, so a
-- crash after the 202, or a Redis outage, loses no refresh. `queued_at` is bumped by every
-- later write, so a refresh that raced a newer interaction leaves the row for another pass.
CREATE TABLE profile_refresh (
    user_id   text PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX profile_refresh_queued ON profile_refresh (queued_at);
