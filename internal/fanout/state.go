package fanout

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// ErrUnknownSink is returned by Pause and Resume for a name no target has.
var ErrUnknownSink = errors.New("fanout: no sink of that name")

// Pause stops handing events to the sink name. What it was handed already
// goes on being delivered and acknowledged; what is routed to it from now on
// stays queued and unacknowledged, so the checkpoint's window fills and the
// replication reader stops exactly as with a broker that is down, and the
// slot does not pass the first event the sink owes. Pausing a paused sink
// does nothing. Safe for concurrent use; it never blocks. It returns an error
// wrapping ErrUnknownSink for a name no target has.
func (f *Fanout) Pause(name string) error {
	p, err := f.pipe(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	was := p.paused
	p.paused = true
	p.mu.Unlock()
	if !was {
		f.logger.Info("sink paused: it is handed nothing until resumed; the slot holds at the first event it owes", "sink", name)
	}
	return nil
}

// Resume hands the sink name, in order, everything queued for it while it
// was paused, and goes on as before. Resuming a sink that is not paused does
// nothing. Safe for concurrent use; it never blocks. It returns an error
// wrapping ErrUnknownSink for a name no target has.
func (f *Fanout) Resume(name string) error {
	p, err := f.pipe(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	was := p.paused
	p.paused = false
	p.mu.Unlock()
	if was {
		f.logger.Info("sink resumed", "sink", name)
		p.wake()
	}
	return nil
}

func (f *Fanout) pipe(name string) (*pipeline, error) {
	p, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSink, name)
	}
	return p, nil
}

// SinkState is a snapshot of one sink.
type SinkState struct {
	// Name is the sink's configured name.
	Name string
	// Paused tells whether the sink is paused (see Fanout.Pause).
	Paused bool
	// Pending is the number of events routed to the sink that it has not
	// acknowledged: queued for it, or handed to it and not yet
	// acknowledged.
	Pending int64
	// Queued is the part of Pending not yet handed to the sink.
	Queued int
	// Err is the sink's last failure: a delivery attempt that failed and is
	// retried (inside the sink or by the fan-out), a permanent failure under
	// the sink's policy, a reopen that failed. It is cleared when the sink
	// acknowledges an event again; nil while the sink is healthy.
	Err error
	// Since is when the sink began failing (the first failure since its
	// last acknowledgement); zero without Err.
	Since time.Time
	// Acked is the sink's acknowledged position: every event routed to it
	// that committed below this LSN is acknowledged by it (or was stored as
	// a dead letter for it). 0 when nothing is known yet.
	Acked uint64
}

// State returns a snapshot of every sink, in the order of the targets. Safe
// for concurrent use.
func (f *Fanout) State() []SinkState {
	out := make([]SinkState, 0, len(f.pipes))
	for _, p := range f.pipes {
		st := SinkState{Name: p.Name, Pending: p.acks.Pending(), Acked: p.acks.Progress()}
		p.mu.Lock()
		st.Paused, st.Queued = p.paused, len(p.queue)
		p.mu.Unlock()
		st.Err, st.Since = p.obs.last()
		out = append(out, st)
	}
	return out
}

// observer is the Observer each sink is given: it passes everything on, and
// keeps the sink's last failure for State.
type observer struct {
	sink.Observer
	bad   atomic.Bool // err is set; read on every acknowledgement
	mu    sync.Mutex
	err   error
	since time.Time
}

// failing records err as the sink's last failure.
func (o *observer) failing(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.since = time.Now()
	}
	o.err = err
	o.bad.Store(true)
	o.mu.Unlock()
}

func (o *observer) last() (error, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err, o.since
}

func (o *observer) Retried(name string, err error) {
	o.failing(err)
	o.Observer.Retried(name, err)
}

func (o *observer) Acked(name string, e *event.Event) {
	if o.bad.Load() {
		o.mu.Lock()
		o.err, o.since = nil, time.Time{}
		o.bad.Store(false)
		o.mu.Unlock()
	}
	o.Observer.Acked(name, e)
}

// DuplicateOtherCommit implements sink.OtherCommitObserver for an Observer
// that does, and counts a duplicate otherwise.
func (o *observer) DuplicateOtherCommit(name string, e *event.Event, storedLSN uint64) {
	if oc, ok := o.Observer.(sink.OtherCommitObserver); ok {
		oc.DuplicateOtherCommit(name, e, storedLSN)
		return
	}
	o.Observer.Duplicate(name, e)
}
