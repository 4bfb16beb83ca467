-- outbox-cdc per-sink progress. Written by outbox-cdc in batches (never per
-- event): every event routed to a sink with a commit LSN below lsn was
-- acknowledged by it. After a restart a sink is not sent again what it
-- already acknowledged while another sink was the one lagging.
CREATE TABLE IF NOT EXISTS {{.Table}} (
    slot       text        NOT NULL,
    sink       text        NOT NULL,
    lsn        pg_lsn      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (slot, sink)
);
