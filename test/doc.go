// Package test holds outbox-cdc's end-to-end and fault tests. They run the
// real binary (or the application in-process) against real servers that the
// harness in internal/harness starts: a throwaway PostgreSQL cluster with
// wal_level=logical, redis-server, nats-server with JetStream and an Apache
// Kafka broker.
//
// `make test` starts them all; when a server is not installed the tests that
// need it skip, unless CI or OUTBOX_CDC_TEST_REQUIRE_SERVERS=1 is set, where
// they fail.
package test
