// Package catalog keeps outbox-cdc's knowledge of the outbox tables in step
// with the server's catalog while it streams.
//
// An outbox table is known by its OID, not its name: at start the configured
// tables are resolved through the identities `outbox-cdc setup` recorded
// (schema.Outboxes), and a Relation message whose OID is an outbox table, a
// partition of one (also one attached while streaming) or an earlier identity
// of one (WAL written before the table was recreated) maps to it, whatever
// its name is now. Relation messages are rare; the catalog is queried on
// them, never per row.
//
// The publication can lose an outbox table while outbox-cdc streams
// (ALTER PUBLICATION ... DROP TABLE, DROP TABLE and CREATE TABLE again), and
// pgoutput then never sends the rows written meanwhile. So the catalog
// verifies the tables' publication membership, by the identity of the catalog
// rows that make them members, at start, on every Relation message, on an
// interval, whenever the checkpoint could move past the last verified
// position, and when the DDL guard's message shows a change let through on
// purpose. Each passing check reports the WAL position read just before it
// (Hooks.Verified: the checkpoint's Bound), so the slot is never confirmed
// past a point where membership was not verified. A failing check is drift: a
// *schema.DriftError, reported once (Hooks.Drift) and returned by every later
// call.
//
// A Catalog owns one SQL connection (not the replication one). Its methods
// are safe for concurrent use.
package catalog
