-- The consumer inbox of outbox-cdc's handler framework (package
-- handler/inbox). One row per event a consumer handled, parked or
-- discarded, keyed by CloudEvents identity: (consumer, source, id).
-- Apply with inbox.Migrate, `outbox-cdc inbox migrate`, or your own
-- migration tool (inbox.SQL prints it with the table name filled in).
-- Idempotent.
CREATE TABLE IF NOT EXISTS {{.Table}} (
    consumer      text        NOT NULL,
    source        text        NOT NULL,
    id            text        NOT NULL,
    -- done: took effect; parked: failed every attempt; replay: marked for
    -- replay by an operator; discarded: set aside for good.
    state         text        NOT NULL DEFAULT 'done',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer     NOT NULL DEFAULT 0,
    reason        text,
    type          text,
    partition_key text,
    event         jsonb,      -- the event (CloudEvents JSON format) while parked
    PRIMARY KEY (consumer, source, id),
    CONSTRAINT {{.StateCheck}} CHECK (state IN ('done', 'parked', 'replay', 'discarded'))
);
-- Parked and replayed events, for the consumer's replay loop and the CLI.
CREATE INDEX IF NOT EXISTS {{.OpenIndex}} ON {{.Table}} (consumer, state, updated_at) WHERE state <> 'done';
-- Pruning by age: rows arrive in time order, so a BRIN index costs almost
-- nothing to keep.
CREATE INDEX IF NOT EXISTS {{.UpdatedIndex}} ON {{.Table}} USING brin (updated_at);
