// Package schema holds the SQL outbox-cdc needs (embedded in the binary) and
// the server-side checks and commands around it: setup, preflight checks,
// status and teardown; the privileges of the role layout in
// docs/security.md (Grant, WarnMessagePrivileges), and all of setup as SQL
// for a DBA (PrintSQL).
//
// Outbox tables are known by OID: setup records each one's identity and
// publication membership in TablesTable, Outboxes checks them against the
// server at start, Inspect and Judge are the run-time check (see package
// catalog), and, for a superuser, setup installs the DDL guard (guard.sql), an
// event trigger that refuses to rename or drop an outbox table or take it out
// of the publication while the slot exists.
package schema
