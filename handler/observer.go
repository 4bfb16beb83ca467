package handler

import "time"

// Observer receives a Consumer's metrics signals. Every method must be
// cheap, must not block and must be safe for concurrent use. route is the
// pattern that matched the event's type ("" for the NotFound handler).
// handler/prom implements it for Prometheus.
type Observer interface {
	// Handled: the event took effect (its handler returned nil and, under
	// an inbox, the transaction committed); d is how long that attempt took.
	Handled(consumer, route string, d time.Duration)
	// Failed: an attempt failed; retry tells whether another follows.
	Failed(consumer, route string, retry bool)
	// Duplicate: the store reported the event handled before; skipped.
	Duplicate(consumer string)
	// DeadLettered: the event was parked after its last attempt.
	DeadLettered(consumer, route string)
	// Unrouted: no handler matched the event's type; skipped.
	Unrouted(consumer string)
	// Invalid: a message was not a valid CloudEvent; skipped.
	Invalid(consumer string)
	// Lag: messages in partition (a Kafka topic/partition, a NATS consumer,
	// a Redis stream) that the consumer has not read yet, as the broker
	// reports it.
	Lag(consumer, partition string, lag int64)
}

// NopObserver ignores every signal.
type NopObserver struct{}

func (NopObserver) Handled(string, string, time.Duration) {}
func (NopObserver) Failed(string, string, bool)           {}
func (NopObserver) Duplicate(string)                      {}
func (NopObserver) DeadLettered(string, string)           {}
func (NopObserver) Unrouted(string)                       {}
func (NopObserver) Invalid(string)                        {}
func (NopObserver) Lag(string, string, int64)             {}
