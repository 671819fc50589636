-- Every delivery of a build's task that claims it counts, retries and redeliveries alike (a
-- task whose worker was killed comes back with Celery's retry count unchanged), so a build
-- that keeps killing its worker still ends `failed` after the allowed attempts.
ALTER TABLE builds ADD COLUMN attempts integer NOT NULL DEFAULT 0;
