// Package nats implements the NATS JetStream sink: every event is published
// asynchronously to a subject of one stream, as a CloudEvent in the binary
// (default) or structured content mode of the CloudEvents NATS protocol
// binding, and acknowledged only after the server's PubAck.
//
// # Delivery
//
// Each message carries Nats-Msg-Id = the event's CloudEvents identity,
// source and id ([event.Event.DedupKey]: "/shipping|1001"), so the stream
// drops a copy sent again within its duplicate window while two events that
// share an id under different sources are both stored. A PubAck that reports
// such a duplicate counts as an acknowledgement. It names the stored
// message's sequence; the sink reads that message (one request, only for
// duplicates) and compares its pglsn with the event's commit LSN: the same
// LSN is a resend, reported to sink.Observer.Duplicate; another LSN means a
// different event reused the identity, which was not stored: the sink logs
// it (source, id, both LSNs) and reports it to
// sink.OtherCommitObserver.DuplicateOtherCommit (see [sink.Options.Duplicate]).
// A stored copy that is gone, has no pglsn, or cannot be read (the sink
// needs to publish to $JS.API.STREAM.MSG.GET.<stream>, or
// $JS.API.DIRECT.GET.<stream> with allow_direct) counts as a resend; a read
// failure is logged once.
//
// The sink is the NATS adapter of the shared delivery engine
// (internal/delivery). Publishes are pipelined up to Config.MaxInFlight;
// nats.go's acknowledgement and error handlers settle them, and the engine
// acknowledges the events in the order they were published.
//
// When a publish fails for a transient reason (the connection dropped, the
// acknowledgement timed out, no responders while a server restarts or a
// leader is elected), the engine stops new sends, waits until every
// outstanding publish has settled, backs off (a reconnection cuts that
// short), the sink waits for the connection, and the engine resends the
// failed event and every later one not known to be stored, in order,
// forever. Events already stored come back as duplicates.
//
// By default (Config.RelaxedOrder false) each message also carries
// Nats-Expected-Last-Msg-Id = the id of the message sent before it, so the
// server refuses to store an event unless its predecessor is the stream's
// last message: if event k fails and k+1 arrives, k+1 is refused and resent
// after k. That keeps the stream itself in event order across any failure,
// at the price of requiring the sink to be the stream's only publisher. The
// first event of a resend round expects the last event acknowledged, so a
// copy the stream holds is refused (naming the stream's last message) even
// after the duplicate window, and the sink counts the events up to that one
// as stored instead of storing them twice.
//
// A message the server can never take (larger than max_payload, a subject
// outside the stream, a publish permission violation) makes Publish (or the
// next Publish or Flush) return a *sink.PermanentError; the event is not
// acknowledged and the sink stops taking events.
//
// # CloudEvents binding
//
// Binary mode follows the binding text on the CloudEvents spec's main branch
// (nats-protocol-binding.md "Version 1.0.3-wip"; releases up to 1.0.2 only
// defined structured mode, because NATS had no headers before 2.2): every
// attribute, datacontenttype included, is a header named "ce-" + its name,
// the value percent-encoded as section 3.1.3.2 prescribes (space, '"', '%'
// and everything outside printable ASCII), and the payload is the data.
// Structured mode sends the JSON event format with content-type
// application/cloudevents+json.
package nats
