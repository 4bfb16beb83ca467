// Package fanout routes events to sinks and runs one pipeline goroutine per
// sink: batching, the sink's policy for an event it can never deliver (block
// and retry it, or store it as a dead letter), reopening a failed sink and
// sending it again, in order, what it had not acknowledged.
//
// New opens every sink itself, with options whose acknowledgement handle
// (sink.Options.Ack) is bound to that sink: it tells the Observer and records
// the acknowledgement in the checkpoint, ignoring a second one for the same
// event. A sink has no index or position to keep in step with the fan-out.
//
// Routing is a set of sinks per event (Route), which the checkpoint narrows
// to the sinks that still owe the event after a restart (checkpoint.Add) and
// the fan-out queues it to (Add).
//
// A sink can be paused and resumed (Pause, Resume): a paused sink is handed
// nothing; the events routed to it stay queued and unacknowledged, so the
// window fills and the replication reader stops exactly as with a broker that
// is down, and the slot holds. Nothing is lost: Resume hands the queue over
// in order. State returns a snapshot of every sink for the admin surface.
//
// Add, Flush and Route are called by the one goroutine that reads the stream;
// every other method is safe for concurrent use.
package fanout
