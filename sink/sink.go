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

// Permanent reports true: retrying cannot deliver the event (see
// IsPermanent).
func (e *PermanentError) Permanent() bool { return true }

// IsPermanent reports whether retrying cannot fix err: errors.As finds in its
// chain an error with a Permanent() bool method, and that method returns
// true. It is the one predicate for "retrying will not help" across
// outbox-cdc, for sinks and for the errors of PostgreSQL, the catalog, the
// decoder and the dead-letter store alike, each mapped where it enters (as
// pgconn.SafeToRetry does the opposite question for pgx). An error without
// such a method is not permanent. nil, and an error that is or wraps
// context.Canceled or context.DeadlineExceeded, are never permanent: a
// cancelled operation says nothing about the next attempt, and is not
// retried either.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
