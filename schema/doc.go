// Package schema holds the SQL outbox-cdc needs (embedded in the binary) and
// the server-side checks and commands around it: setup, preflight checks,
// status and teardown; the privileges of the role layout in
// docs/security.md (Grant, WarnMessagePrivileges), and all of setup as SQL
// for a DBA (PrintSQL).
package schema
