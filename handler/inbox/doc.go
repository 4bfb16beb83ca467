// Package inbox makes handlers take effect once: a transactional inbox in
// the consumer's own PostgreSQL database, and a weaker Redis-backed store
// for services without one.
//
// # The PostgreSQL inbox
//
// [Inbox] implements handler.Store and handler.DeadLetters over one table
// (default public.outbox_inbox; the DDL is in inbox.sql, applied by
// [Migrate] or printed by [SQL]). Each attempt of an event runs in one
// transaction:
//
//	BEGIN;
//	INSERT INTO outbox_inbox (consumer, source, id) VALUES (...)
//	    ON CONFLICT DO NOTHING;           -- (replays: DO UPDATE ... WHERE state = 'replay')
//	-- no row inserted: the event took effect before; ROLLBACK, skip it
//	-- the handler's writes, through inbox.Tx(ctx)
//	COMMIT;                               -- then the broker is acknowledged
//
// The business writes and the inbox row commit together or not at all, so
// an event takes effect exactly once per consumer name, however often the
// broker delivers it: a redelivery after a crash, a Kafka rebalance, a
// JetStream ack that arrived too late. Two deliveries of one event running
// at once (a redelivery to another instance while the first still runs)
// meet on the primary key: the second waits for the first transaction and
// is then skipped. A commit whose outcome is unknown (the connection broke)
// is retried, and the retry finds the row when the commit had succeeded.
//
// Events that failed every attempt are parked in the same table (state
// "parked", with attempts, reason and the event itself); a parked event is
// skipped when the broker redelivers it. `outbox-cdc inbox replay` sets
// state "replay"; the consumer's replay loop then runs it through the
// inbox once more, which sets it "done" in the handler's transaction.
// `outbox-cdc inbox discard` sets "discarded". [Inbox.Prune] deletes done
// and discarded rows older than an age (the Consumer calls it, see
// handler.Config.Retention); parked rows stay until replayed or discarded.
//
// # The Redis store
//
// [RedisStore] keeps one key per (consumer, source, id) and is weaker: the
// handler's effect and the key are not written atomically. It takes a lease
// (SET NX PX) before the handler runs, so two deliveries do not run at
// once, and marks the event done after the handler returned. A crash after
// the handler's effect and before the mark, or a lease that expired while
// the handler still ran, lets the event run again: handlers must tolerate
// that (be idempotent). Keys expire after RedisConfig.TTL, so a
// redelivery later than that runs again too. It cannot park events.
package inbox
