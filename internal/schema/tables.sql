-- outbox-cdc's record of the outbox tables it streams, written by
-- `outbox-cdc setup` and read by `outbox-cdc run` and by the DDL guard. An
-- outbox table is known by its OID: a rename is followed, and a table dropped
-- and created again under the same name is a different table. Rows with
-- current = false are earlier identities of the same configured table (kept
-- so that WAL written before a recreate still maps to it).
CREATE TABLE IF NOT EXISTS {{.Table}} (
    slot        text        NOT NULL,           -- the replication slot streaming the table
    table_name  text        NOT NULL,           -- the configured schema.table
    table_oid   oid         NOT NULL,
    publication text        NOT NULL,
    membership  text[]      NOT NULL DEFAULT '{}', -- how the table is in the publication (pg_publication_rel / _namespace row OIDs)
    guarded     boolean     NOT NULL DEFAULT true, -- the DDL guard refuses to rename, drop or unpublish it
    current     boolean     NOT NULL DEFAULT true,
    adopted_at  timestamptz NOT NULL DEFAULT now(),
    adopted_lsn pg_lsn      NOT NULL DEFAULT pg_current_wal_lsn(),
    PRIMARY KEY (slot, table_oid)
);
