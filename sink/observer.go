package sink

import (
	"log/slog"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Observer receives a sink's per-event and per-failure signals, for metrics.
// Every method must be cheap, must not block and must be safe for concurrent
// use.
type Observer interface {
	// Acked is called once per event and sink after the destination
	// acknowledged it: by the sink's Options.Ack handle, before the
	// acknowledgement is recorded.
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
	// Ack is the sink's acknowledgement handle: the sink calls it exactly
	// once per event it was handed, after its destination acknowledged the
	// event, and never for an event it merely sent. It never blocks and is
	// safe for concurrent use. The fan-out sets it for each sink, bound to
	// that sink: it tells the Observer (Acked) and records the
	// acknowledgement, which is what lets the replication slot move; a
	// second call for the same event is ignored. Nil (a sink used on its
	// own, as by backfill) means one that only tells the Observer.
	Ack func(e *event.Event)
}

// WithDefaults returns o with nil fields replaced by their defaults.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Ack == nil {
		name, obs := o.Name, o.Observer
		o.Ack = func(e *event.Event) { obs.Acked(name, e) }
	}
	return o
}
