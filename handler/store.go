package handler

import (
	"context"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// ErrDuplicate is returned by Store.Once when the event took effect before
// (or is parked, or was discarded): the handler did not run.
var ErrDuplicate = errors.New("handler: event already handled")

// ErrBusy is returned by a Store that cannot tell yet whether the event
// took effect, because another consumer is running it (the Redis store's
// lease): the attempt is retried after a backoff.
var ErrBusy = errors.New("handler: event is being handled elsewhere")

// Store makes an event's effect happen at most once per consumer.
// handler/inbox has the PostgreSQL inbox (exactly once, with the handler's
// writes in the same transaction) and a Redis-backed store (a weaker
// guarantee; see its documentation).
type Store interface {
	// Once runs fn unless the event (its source and id) took effect for
	// consumer before, in which case it returns ErrDuplicate. fn's error is
	// returned as is, and nothing is recorded then. Safe for concurrent use.
	Once(ctx context.Context, consumer string, e *cloudevents.Event, fn func(context.Context) error) error
}

// Parked is an event set aside after it failed every attempt.
type Parked struct {
	Event    cloudevents.Event
	Key      string // its ordering key
	Attempts int
	Reason   string // the last error
}

// DeadLetters stores parked events and hands back those an operator marked
// for replay. The inbox implements it in the inbox table.
type DeadLetters interface {
	// Park records p for consumer. A parked event is not run again when the
	// broker redelivers it (the store's Once reports it a duplicate) until
	// it is marked for replay.
	Park(ctx context.Context, consumer string, p Parked) error
	// Replays returns up to limit events of consumer marked for replay.
	// Running one through Once takes it out of that state.
	Replays(ctx context.Context, consumer string, limit int) ([]Parked, error)
}

// PermanentError marks a handler failure that retrying cannot fix: the
// event is parked at once (or, without a dead-letter store, handed back).
type PermanentError struct{ Err error }

func (p *PermanentError) Error() string { return "permanent: " + p.Err.Error() }
func (p *PermanentError) Unwrap() error { return p.Err }

// Permanent wraps err so that the Consumer does not retry it. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is or wraps a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// ConfigError names a setting that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (c *ConfigError) Error() string { return fmt.Sprintf("handler: %s: %s", c.Field, c.Reason) }
