// Package schema holds the SQL outbox-cdc needs (embedded in the binary) and
// the server-side checks and commands around it: setup, preflight checks,
// status and teardown.
package schema
