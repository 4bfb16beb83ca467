// Package harness starts real PostgreSQL, Redis, NATS (JetStream) and Kafka
// (KRaft) servers for the outbox-cdc integration tests.
//
// Every server runs as a child process on free 127.0.0.1 ports with its data
// and log in a private temporary directory. A server can be stopped
// gracefully (Stop), killed with SIGKILL (Kill) and started again (Start) on
// the same port and data directory, so tests can take a broker away for a
// while and bring it back. Close kills the server and deletes its temporary
// directory; call it from t.Cleanup.
//
//	pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{})
//	harness.SkipIfNotInstalled(t, "postgres", err)
//	t.Cleanup(func() { pg.Close() })
//	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
//
// # Ports
//
// Test binaries of several packages may start servers at the same time (go
// test -p N). A port is picked at random outside the kernel's ephemeral port
// range and reserved across processes (an abstract Unix socket named after
// it) until Close, so two test processes never pick the same port, also while
// one of them has its server stopped. A program that does not use the
// harness can still take a port between the pick and the server's bind: the
// Start functions see the server fail to bind ("address already in use" in
// its log), pick new ports and start again, at most 5 times; they give up
// with an error wrapping ErrPortTaken. Start after Stop or Kill keeps the
// port. Readiness probes check that the server answering is the one
// started (its data directory, pid, name or cluster ID), not whatever holds
// the port. FreePort hands out such a port for a listener a test runs itself.
//
// # Where the servers come from
//
// scripts/install-test-deps.sh installs or builds everything and writes
// $OUTBOX_CDC_TEST_CACHE/env.sh (default cache dir: $HOME/.cache/outbox-cdc),
// which exports the variables below. Each has a fallback, so sourcing the
// file is optional on a machine where the script has run:
//
//	OUTBOX_CDC_TEST_PG_BIN        PostgreSQL bin dir (default: newest /usr/lib/postgresql/*/bin)
//	OUTBOX_CDC_TEST_PG_VERSION    PostgreSQL major to start (14 to 18; default: OUTBOX_CDC_TEST_PG_BIN's)
//	OUTBOX_CDC_TEST_PG_VERSIONS   dir of one <major>/bin per fetched major (see PGBinDirFor)
//	OUTBOX_CDC_TEST_REDIS_SERVER  redis-server binary (default: redis-server in PATH)
//	OUTBOX_CDC_TEST_NATS_SERVER   nats-server binary (default: $CACHE/bin/nats-server,
//	                              else built with `go build` from the repository's go.mod)
//	OUTBOX_CDC_TEST_KAFKA_LIBS    dir of Kafka broker jars (default: $CACHE/kafka-libs)
//	OUTBOX_CDC_TEST_JAVA          java binary (default: $JAVA_HOME/bin/java, else java in PATH)
//	OUTBOX_CDC_TEST_CACHE         the cache dir itself
//
// The prefix OUTBOX_CDC_TEST_ keeps them apart from outbox-cdc's own
// OUTBOX_CDC_ config overrides (package config ignores it), so an outbox-cdc
// started by a test does not warn about them. A variable's name from before
// the prefix (OUTBOX_CDC_PG_BIN, OUTBOX_CDC_CACHE, ...) is still read when the
// new one is not set.
//
// When a binary or the jar dir is missing, the Start functions return an
// error wrapping ErrNotInstalled. Tests should skip then, except on CI or
// when OUTBOX_CDC_TEST_REQUIRE_SERVERS is set, where a missing server is a
// failure: see Require and SkipIfNotInstalled.
//
// # PostgreSQL versions and standbys
//
// StartPostgres starts the major PostgresOptions.Version, else the one
// OUTBOX_CDC_TEST_PG_VERSION names, else Debian's server: that variable is how
// `make test-matrix` runs the same tests on PostgreSQL 14, 15, 16, 17 and 18.
// Postgres.Version tells which one a test got. StartStandby makes a
// streaming hot standby of a running primary (a base backup taken with
// pg_backup_start/pg_backup_stop, since the fetched server packages carry no
// pg_basebackup), with failover slot synchronization on 17+; Promote turns
// it into a primary and WaitSlotSynced waits for a failover slot to reach
// it.
//
// # Processes
//
// Servers run in their own process group with a parent-death signal
// (SIGKILL), so a test binary that crashes or is killed by `go test
// -timeout` does not leave servers behind. Kill and Close SIGKILL the whole
// group (e.g. the postmaster and all its backends). PostgreSQL refuses to run
// as root: when the tests run as root, initdb and postgres run as the
// unprivileged "postgres" OS user, and the data directory belongs to it.
//
// Each server appends its output to a log file in its temporary directory
// (LogPath); a failed Start returns an error that includes the tail of that
// log, and LogTail gives it to tests that want to print it on failure. Set
// OUTBOX_CDC_TEST_KEEP_TEMP=1 to keep the directories after Close. Directories
// left by a test process that died are removed by the next one.
//
// The package uses only the standard library, pgx (PostgreSQL helpers) and
// franz-go (to ask Kafka for metadata before reporting it ready).
package harness
