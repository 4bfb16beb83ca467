// Package acktest gives a sink tested on its own the acknowledgement handle a
// fan-out would give it, for the sinks' unit tests and benchmarks.
//
// Before the checkpoint took acknowledgements over, each event carried a
// tracker that its sink's acknowledgement reached, and a guard that ignored a
// second acknowledgement from the same sink. Track and Handle keep exactly
// that for tests: Handle tells the Observer and the event's Tracker once per
// event.
package acktest

import (
	"sync"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Tracker is told when the sink acknowledged an event. Done must not block.
type Tracker interface {
	Done(e *event.Event)
}

var (
	trackers sync.Map // *event.Event → Tracker
	acked    sync.Map // *event.Event → struct{}: acknowledged once already
)

// Track makes Handle tell tr when a sink acknowledges e. Call it before e is
// published; it re-arms an event that was acknowledged before (events reused
// by a benchmark).
func Track(e *event.Event, tr Tracker) {
	acked.Delete(e)
	trackers.Store(e, tr)
}

// Handle returns o with the Ack handle set: the first acknowledgement of an
// event tells o's Observer (if any) and the Tracker given to Track (if any);
// later ones are ignored, as the fan-out's handle ignores them. Safe for
// concurrent use.
func Handle(o sink.Options) sink.Options {
	name, obs := o.Name, o.Observer
	o.Ack = func(e *event.Event) {
		if _, again := acked.LoadOrStore(e, struct{}{}); again {
			return
		}
		if obs != nil {
			obs.Acked(name, e)
		}
		if tr, ok := trackers.Load(e); ok {
			tr.(Tracker).Done(e)
		}
	}
	return o
}
