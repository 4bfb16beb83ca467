// Package delivery is the delivery engine every broker sink shares: an
// ordered in-flight window with a context-aware acquire, completion in order
// (or per message, where the broker's client keeps the order itself), a
// sticky permanent failure, transient failures resent in order after a
// backoff, Flush, and a Close that waits for the engine's goroutine. The
// sinks in internal/sink/{kafka,nats,redis} are adapters: they encode an
// event into a message, send messages, and classify their client's errors
// once, at their boundary.
//
// # The window
//
// Publish reserves slots in a ring of Config.MaxInFlight events (blocking
// while it is full, until ctx is done), lets the adapter encode each event
// into its message (Adapter.Encode, on the Publish goroutine), and commits
// them in order. One engine goroutine hands committed messages to
// Adapter.Send in batches of at most Config.MaxBatch, in window order. The
// adapter reports each message's outcome with Batch.Settle (or
// Engine.Settle with the message's Ticket), during Send (a synchronous round
// trip, Redis) or later from any goroutine (a promise or an acknowledgement
// callback, Kafka and NATS JetStream).
//
// With Config.Ordered an event is acknowledged (Config.Ack, the sink's
// sink.Options.Ack) only once every event before it in the window was: the
// engine goroutine walks the window from its oldest slot. Without it each
// event is acknowledged as soon as its broker confirmed it (Kafka keeps the
// order per partition itself); the window still frees slots oldest first.
//
// # Failures
//
// An error for which sink.IsPermanent is true (adapters mark theirs with
// Permanent) is the sink's permanent failure: the *sink.PermanentError of the
// earliest such event, returned by every later Publish and Flush until the
// sink is reopened. Nothing more is sent; messages already sent are still
// acknowledged when their broker confirms them (and, ordered, when they come
// before the failed one).
//
// Any other error is transient. The engine stops sending, waits until every
// message sent has settled, reports the round to Observer.Retried, logs one
// line when the sink starts failing, waits Config.Retry's backoff (cut short
// by Config.Wake), lets the adapter look at the failure (Recoverer), and
// sends again, in window order, every message not known to be stored. It
// logs one line when an event is acknowledged again.
//
// An error from Encode is the event's alone: Publish returns it as a
// *sink.PermanentError without taking that event or any after it, and the
// sink stays usable (context errors are returned as they are).
//
// # Lock order and goroutines
//
// The engine's mutex is never held while calling the adapter's Send, Encode
// or Recover, nor while it waits; callbacks that settle messages may hold
// their client's locks (nats.go calls its error handler under its publisher
// lock), so the adapter must not call its client while holding nothing but
// the engine's lock either. Config.Ack and Observer methods are called from
// the engine goroutine, or with the engine's mutex held from Settle in
// unordered engines: they must not block, as sink.Options.Ack promises.
package delivery
