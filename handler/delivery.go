package handler

import (
	"context"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// Delivery is one event a Source read, with the callbacks through which the
// Consumer settles it. The Consumer calls exactly one of Ack, Nak and
// Release, once, from any goroutine; none of them may block for long.
type Delivery struct {
	// Event is the decoded event. Unset when Err is set.
	Event cloudevents.Event
	// Err is set when the message is not a valid CloudEvent: the Consumer
	// logs it with Position, counts it (Observer.Invalid) and acknowledges
	// it, since no retry can make it valid.
	Err error
	// Key orders deliveries: those with the same key run one at a time in
	// the order they were submitted. Use [Key] to compute it.
	Key string
	// Position says where the message is, for logs: "orders/3@1200".
	Position string
	// Redelivered reports that the broker delivered this message before
	// (NATS NumDelivered > 1, a Redis entry read from a pending list).
	Redelivered bool

	// Ack settles the delivery for good: its effect committed, it was a
	// duplicate, it was parked, or it is invalid.
	Ack func()
	// Nak hands the delivery back to the broker for redelivery after delay,
	// after it failed every attempt and no dead-letter store took it. nil
	// when the broker has no such operation: the Consumer then retries in
	// place.
	Nak func(delay time.Duration)
	// Release gives the delivery up unsettled (shutdown, a revoked
	// partition): the broker delivers it again. nil: nothing to do.
	Release func()
	// Revoked, when not nil, is closed when the source no longer owns the
	// delivery (a Kafka partition revoked): the Consumer starts no further
	// attempt and releases it.
	Revoked <-chan struct{}
}

// DeliveryInfo describes the delivery a handler runs for: see
// DeliveryFromContext.
type DeliveryInfo struct {
	// Position is Delivery.Position ("orders/3@1200", "OUTBOX/17", ...).
	Position string
	// Redelivered is Delivery.Redelivered.
	Redelivered bool
	// Attempt counts this delivery's attempts in this process, from 1.
	Attempt int
}

type infoKey struct{}

// DeliveryFromContext returns what a handler's ctx says of its delivery.
func DeliveryFromContext(ctx context.Context) (DeliveryInfo, bool) {
	i, ok := ctx.Value(infoKey{}).(DeliveryInfo)
	return i, ok
}

// Key returns the ordering key of an event: its partitionkey extension
// (outbox-cdc sets it to the aggregate id), else fallback (a Kafka record
// key, for instance), else the event's identity (source and id, as
// event.DedupKey writes it), so that events without a key are unordered.
func Key(e *cloudevents.Event, fallback string) string {
	if k, ok := e.Extensions()["partitionkey"]; ok {
		if s, ok := k.(string); ok && s != "" {
			return s
		}
	}
	if fallback != "" {
		return fallback
	}
	return "\x00" + e.Source() + "\x00" + e.ID()
}

// Source reads one broker and submits deliveries to a Queue.
type Source interface {
	// Run reads messages and submits them in the broker's order until ctx
	// is done or the source fails for good. Before it returns it calls
	// q.Drain, so that every delivery is settled, then settles with the
	// broker (commits, acks) and closes its connections. It returns nil
	// after ctx is done.
	Run(ctx context.Context, q Queue) error
}

// Queue is what a Source submits to; the Consumer implements it.
type Queue interface {
	// Submit queues d. It blocks while Config.MaxBuffered deliveries are
	// held, and returns ctx.Err() if ctx is done first (d is not queued).
	Submit(ctx context.Context, d *Delivery) error
	// Drop removes the queued deliveries for which match is true and have
	// not started, releasing each (Delivery.Release); it returns how many.
	// Running ones are left alone.
	Drop(match func(*Delivery) bool) int
	// Drain drops every queued delivery and waits until the running ones
	// are settled: at most Config.DrainTimeout, after which their ctx is
	// cancelled and Drain waits for them to return. Safe to call twice.
	Drain()
	// Consumer returns the consumer's name.
	Consumer() string
	// Observer returns the consumer's observer (never nil), for Lag.
	Observer() Observer
	// Logger returns the consumer's logger (never nil).
	Logger() *slog.Logger
}
