package sink

import (
	"context"
	"errors"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Sink publishes events to one destination.
//
// One pipeline goroutine calls Publish and Flush; Close is called once, after
// the last Publish. Implementations document their own defaults.
type Sink interface {
	// Publish hands events to the sink in order. It returns once the sink has
	// taken them, usually before they are acknowledged, and blocks while the
	// sink's own in-flight limit is reached. For every event the sink calls
	// Ack exactly once, after its destination acknowledged it. Transient
	// failures are retried inside the sink, keeping the order of events with
	// the same partition key. Publish returns an error only when ctx is done
	// or an event can never be delivered (see Permanent). The sink must not
	// keep the slice after Publish returns; it may keep the events.
	Publish(ctx context.Context, events []*event.Event) error
	// Flush blocks until every event handed to Publish has been acknowledged,
	// or ctx is done.
	Flush(ctx context.Context) error
	// Close releases the sink's connections. Unacknowledged events stay
	// unacknowledged, so the slot does not pass them.
	Close() error
}

// ErrClosed is returned by a sink used after Close.
var ErrClosed = errors.New("sink: closed")

// PermanentError marks a failure that retrying cannot fix: an event the broker
// rejects for good (too large, not authorized, an invalid destination name) or
// one that cannot be encoded. It names the sink and the event.
type PermanentError struct {
	Sink    string
	EventID string
	Err     error
}

func (e *PermanentError) Error() string {
	return "sink " + e.Sink + ": event " + e.EventID + " cannot be delivered: " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports whether err is, or wraps, a PermanentError.
func Permanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
