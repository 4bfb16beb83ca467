-- The dead-letter table as outbox-cdc made it before the table kept events
-- as bytes and keyed letters by CloudEvents identity and input position
-- (copied from schema/dead_letter.sql of that version, names filled in).
-- outbox-cdc dead-letter store. Created by `outbox-cdc setup` in the outbox's
-- database; never part of the publication. One row per event (or undecodable
-- outbox row) that a sink could not take and the policy said to set aside.
CREATE TABLE IF NOT EXISTS outbox_dead_letter (
    id              bigserial   PRIMARY KEY,
    sink            text        NOT NULL,          -- sink name; '' for rows that could not be decoded
    event_id        text        NOT NULL,          -- CloudEvents id, or '' when the row had none
    source_table    text        NOT NULL DEFAULT '',
    commit_lsn      pg_lsn      NOT NULL,
    event           jsonb,                         -- the CloudEvent, structured mode (NULL for decode failures)
    raw             jsonb,                         -- the outbox row as column -> text, for decode failures
    error           text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replayed', 'discarded')),
    resolved_at     timestamptz,
    resolved_by     text,
    UNIQUE (sink, event_id, commit_lsn)           -- an event sent again after a crash is stored once
);
-- The aggregate type feeds destination templates but is not a CloudEvents
-- attribute, so a replay needs it kept beside the event.
ALTER TABLE outbox_dead_letter ADD COLUMN IF NOT EXISTS aggregate_type text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS outbox_dead_letter_status_idx ON outbox_dead_letter (status, sink);
