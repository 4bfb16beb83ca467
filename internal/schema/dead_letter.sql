-- outbox-cdc dead-letter store. Created by `outbox-cdc setup` in the outbox's
-- database; never part of the publication. One row per event that a sink
-- could not take, or per outbox row or message that could not be decoded,
-- when the policy said to set it aside.
CREATE TABLE IF NOT EXISTS {{.Table}} (
    id              bigserial   PRIMARY KEY,
    sink            text        NOT NULL,          -- sink name; '' for rows that could not be decoded
    event_id        text        NOT NULL,          -- CloudEvents id, or '' when the row had none
    event_source    text        NOT NULL DEFAULT '', -- CloudEvents source: with the id, the event's identity
    source_table    text        NOT NULL DEFAULT '',
    commit_lsn      pg_lsn      NOT NULL,
    tx_position     integer,                       -- the row's or message's position in its transaction
    event           bytea,                         -- the CloudEvent in JSON, byte for byte (NULL for decode failures)
    raw             bytea,                         -- the outbox row as a JSON object column -> text, for decode failures
    error           text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replayed', 'discarded')),
    resolved_at     timestamptz,
    resolved_by     text
);
-- The aggregate type feeds destination templates but is not a CloudEvents
-- attribute, so a replay needs it kept beside the event.
ALTER TABLE {{.Table}} ADD COLUMN IF NOT EXISTS aggregate_type text NOT NULL DEFAULT '';
-- Tables made by earlier versions: identity columns, byte-for-byte storage
-- (jsonb refuses legal JSON such as the escape \u0000, which jammed the sink
-- that tried to store it), and no key that merges different inputs.
ALTER TABLE {{.Table}} ADD COLUMN IF NOT EXISTS event_source text NOT NULL DEFAULT '';
ALTER TABLE {{.Table}} ADD COLUMN IF NOT EXISTS tx_position integer;
DO $outbox_cdc$
DECLARE
    t regclass := {{.TableLiteral}}::regclass;
    c record;
BEGIN
    IF (SELECT atttypid FROM pg_attribute WHERE attrelid = t AND attname = 'event') = 'jsonb'::regtype THEN
        EXECUTE format($q$UPDATE %s SET event_source = coalesce(event->>'source', '') WHERE sink <> '' AND event_source = ''$q$, t);
        EXECUTE format($q$ALTER TABLE %s ALTER COLUMN event TYPE bytea USING convert_to(event::text, 'UTF8')$q$, t);
    END IF;
    IF (SELECT atttypid FROM pg_attribute WHERE attrelid = t AND attname = 'raw') = 'jsonb'::regtype THEN
        EXECUTE format($q$ALTER TABLE %s ALTER COLUMN raw TYPE bytea USING convert_to(raw::text, 'UTF8')$q$, t);
    END IF;
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = t AND contype = 'u' AND pg_get_constraintdef(oid) = 'UNIQUE (sink, event_id, commit_lsn)' LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', t, c.conname);
    END LOOP;
END
$outbox_cdc$;
-- An event a sink could not take is stored once per sink: sent again after a
-- crash (same source, id and commit), its attempts are counted instead.
CREATE UNIQUE INDEX IF NOT EXISTS {{.EventKey}} ON {{.Table}} (sink, event_source, event_id, commit_lsn) WHERE sink <> '';
-- A row or message that could not be decoded is known by its transaction and
-- its position in it: two bad inputs are two letters, the same one decoded
-- again after a restart is one.
CREATE UNIQUE INDEX IF NOT EXISTS {{.InputKey}} ON {{.Table}} (commit_lsn, tx_position) WHERE sink = '';
CREATE INDEX IF NOT EXISTS {{.Index}} ON {{.Table}} (status, sink);
