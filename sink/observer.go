package sink

import (
	"log/slog"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Observer receives a sink's per-event and per-failure signals, for metrics.
// Every method must be cheap, must not block and must be safe for concurrent
// use.
type Observer interface {
	// Acked is called once per event after the destination acknowledged it,
	// right before the sink calls e.Ack.
	Acked(sink string, e *event.Event)
	// Retried is called each time a delivery attempt failed and will be
	// retried.
	Retried(sink string, err error)
	// Duplicate is called when the destination reports an event it already
	// held (broker dedup).
	Duplicate(sink string, e *event.Event)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Acked(string, *event.Event)     {}
func (NopObserver) Retried(string, error)          {}
func (NopObserver) Duplicate(string, *event.Event) {}

// Options are what every sink constructor takes besides its own Config.
type Options struct {
	// Name is the sink's configured name, used in errors, logs and metrics.
	Name string
	// Logger receives one line per state change; nil discards.
	Logger *slog.Logger
	// Observer receives metrics signals; nil means NopObserver.
	Observer Observer
	// Index is the sink's position in the fan-out (0 to 63), set by whoever
	// builds the fan-out: acknowledgements are recorded per sink, so that a
	// sink reopened after a failure is sent exactly what it did not
	// acknowledge.
	Index int
}

// WithDefaults returns o with nil fields replaced by their defaults.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	return o
}

// Ack tells o's observer that e was acknowledged by the sink, then acknowledges
// e. Sinks call it instead of e.Ack.
func (o Options) Ack(e *event.Event) {
	if e.AckedFor(o.Index) {
		return // acknowledged already: never count a sink twice
	}
	o.Observer.Acked(o.Name, e)
	e.AckFor(o.Index)
}
