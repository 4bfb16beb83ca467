// Package outboxcdc is outbox-cdc as a library: the application that
// streams outbox rows from PostgreSQL logical replication to brokers as
// CloudEvents, for the outbox-cdc command and for Go programs that embed it
// (with sinks of their own, see CustomSink).
//
// New builds everything a configuration describes and checks what can be
// checked before anything runs: the server, the slot, the outbox tables, the
// sinks (opened), the HTTP listener (bound). Run runs every component (the
// replication stream, the sink fan-out, the HTTP server and slot poller, the
// catalog watcher, the heartbeat, retention and the per-sink progress saver)
// under one supervisor and returns only after every goroutine it started
// has exited:
//
//	cfg, err := config.Load("outbox-cdc.yaml", os.Environ(), nil)
//	...
//	app, err := outboxcdc.New(ctx, cfg, outboxcdc.Options{Logger: logger})
//	...
//	err = app.Run(ctx) // until ctx is done, then the shutdown sequence
//
// # Shutdown
//
// A stop (Run's context done, a sink that failed for good, an outbox table
// that left the publication, a row that cannot become an event) starts one
// sequence with one budget, postgres.drain_timeout: the stream stops reading
// WAL; the sinks deliver what is in flight until the budget is spent; the
// last standby status confirms what they acknowledged; then everything is
// closed, which may take at most one second more (closeTail). What the stop
// left unconfirmed is logged in one line; the server sends it again at the
// next start.
//
// # Control
//
// Snapshot, PauseSink, ResumeSink and EffectiveConfig are the control
// surface an admin console needs; they are safe for concurrent use, also
// while Run runs.
package outboxcdc
