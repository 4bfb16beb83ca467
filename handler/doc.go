// Package handler runs Go handlers on CloudEvents read from Kafka, NATS
// JetStream or Redis Streams, so that each event takes effect once: the
// consumer half of outbox-cdc, which delivers at least once.
//
// # Pieces
//
// A [Router] maps CloudEvents types to [Handler]s, by exact type or by a
// glob ("com.example.order.*", as path.Match), with [Middleware] around
// them. A [Source] reads one broker (sub-packages kafka, nats and redis; each
// reads both CloudEvents content modes, binary and structured, so it serves
// any CloudEvents producer) and hands [Delivery] values to a [Consumer],
// which runs them through the router:
//
//   - Per-key order: deliveries with the same key (the partitionkey
//     extension, which outbox-cdc sets to the aggregate id) run one at a
//     time, in the order the source read them; different keys run
//     concurrently, at most Config.Concurrency at once.
//   - Failures: an attempt that returns an error is retried after a backoff
//     (Config.Backoff, exponential with full jitter), while other keys keep
//     flowing; after Config.Attempts attempts, or at once for a
//     [PermanentError], the event is parked in Config.DeadLetters (the
//     inbox table, state "parked", with the reason and the attempts) and its
//     key moves on. `outbox-cdc inbox replay` marks a parked event for
//     replay; the consumer then runs it once more, through the inbox.
//     Without a dead-letter store a failing event is handed back to the
//     broker where it can take one (NATS: nak with the backoff, bounded by
//     the consumer's MaxDeliver; Redis: left pending for XAUTOCLAIM), and
//     retried in place, holding its key, where it cannot (Kafka).
//   - Exactly-once effect: with Config.Store set to an inbox
//     (handler/inbox), each attempt runs in one PostgreSQL transaction that
//     first records (consumer, source, id) in the inbox table with INSERT ...
//     ON CONFLICT DO NOTHING. An event already recorded is skipped
//     ([ErrDuplicate]); otherwise the handler's writes (through
//     inbox.Tx(ctx)) and the inbox row commit together, and only then is
//     the broker acknowledged. A redelivery after a crash, a rebalance or an
//     acknowledgement that was lost is therefore skipped.
//   - Acknowledgement after the effect: the source acknowledges (Kafka:
//     commits the offset below which every record was handled; NATS: acks;
//     Redis: XACK) only after the handler's transaction committed, the
//     event was found a duplicate, or it was parked.
//
// Metrics come in through an [Observer] (handler/prom has the Prometheus
// adapter). A Consumer logs one line per state change, never per event.
//
// For programs that embed outbox-cdc, [NewSink] runs the same router
// in-process as a sink of the relay, acknowledged when the handler returned.
package handler
