// Package acktest gives a sink tested on its own the acknowledgement handle a
// fan-out would give it, for the sinks' unit tests and benchmarks.
//
// Before the checkpoint took acknowledgements over, each event carried a
// tracker that its sink's acknowledgement reached, and a guard that ignored a
// second acknowledgement from the same sink. Track and Handle keep that for
// the events a test tracks; an event nobody tracks only reaches the Observer,
// every time, so that a sink acknowledging twice shows, and a benchmark pays
// one map lookup per acknowledgement and no allocation.
package acktest

import (
	"sync"
	"sync/atomic"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Tracker is told when the sink acknowledged an event. Done must not block.
type Tracker interface {
	Done(e *event.Event)
}

type tracked struct {
	tr    Tracker
	acked atomic.Bool
}

var trackers sync.Map // *event.Event → *tracked

// Track makes Handle tell tr when a sink acknowledges e, once. Call it
// before e is published; calling it again re-arms an event that was
// acknowledged before (events reused by a benchmark).
func Track(e *event.Event, tr Tracker) { trackers.Store(e, &tracked{tr: tr}) }

// Handle returns o with the Ack handle set. For an event given to Track, the
// first acknowledgement tells o's Observer (if any) and the Tracker, and
// later ones are ignored, as the fan-out's handle ignores them; any other
// event is passed to the Observer each time. Safe for concurrent use.
func Handle(o sink.Options) sink.Options {
	name, obs := o.Name, o.Observer
	o.Ack = func(e *event.Event) {
		t, ok := trackers.Load(e)
		if ok && t.(*tracked).acked.Swap(true) {
			return
		}
		if obs != nil {
			obs.Acked(name, e)
		}
		if ok {
			t.(*tracked).tr.Done(e)
		}
	}
	return o
}
