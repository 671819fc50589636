-- Events out (docs/events.md). An event is written in the same statement or transaction as
-- the change it announces, so it exists exactly when the change was committed; the relay
-- publishes it and only then deletes it, so a broker that is down delays events, never
-- loses them. Its id, type and time are fixed here; the relay adds the deployment's name.
CREATE TABLE event_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid NOT NULL DEFAULT gen_random_uuid(),
    type        text NOT NULL,
    fields      jsonb NOT NULL,
    -- The W3C trace context of the work that made the change, carried on the event.
    traceparent text,
    at          timestamptz NOT NULL DEFAULT now()
);

-- The relay listens on this channel, so an event goes out within moments of its commit
-- (NOTIFY is delivered at commit, never for a change rolled back).
CREATE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('recs_event_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_written AFTER INSERT ON event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify();
