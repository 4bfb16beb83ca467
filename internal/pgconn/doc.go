// Package pgconn is the one place outbox-cdc opens PostgreSQL connections:
// the replication connection, SQL connections and pools, for the running
// instance and for every command (setup, status, backfill, dlq).
//
// Every connection gets the same application_name ("outbox-cdc", or
// "outbox-cdc-<role>" for a one-off command an operator may want to tell
// apart), the configured connect timeout, TLS as the URL says, and, for SQL,
// client_encoding UTF8 after a check that outbox-cdc can read the database's
// server encoding. No error of this package shows a password: RedactURL and
// RedactError are also what every other package uses to mask one.
package pgconn
