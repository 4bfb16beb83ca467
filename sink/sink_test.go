package sink_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// verdict is an error that says whether retrying can help.
type verdict bool

func (v verdict) Error() string   { return fmt.Sprintf("permanent=%v", bool(v)) }
func (v verdict) Permanent() bool { return bool(v) }

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	perr := &sink.PermanentError{Sink: "k", EventID: "1", Err: errors.New("too large")}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("broker down"), false},
		{"*PermanentError", perr, true},
		{"wrapped *PermanentError", fmt.Errorf("kafka: %w", perr), true},
		{"joined with a plain error", errors.Join(errors.New("x"), perr), true},
		{"says permanent", fmt.Errorf("catalog: %w", verdict(true)), true},
		{"says not permanent", fmt.Errorf("catalog: %w", verdict(false)), false},
		{"the outermost verdict wins", fmt.Errorf("%w", &wrapVerdict{verdict(false), perr}), false},
		{"context.Canceled", context.Canceled, false},
		{"context.DeadlineExceeded, wrapped", fmt.Errorf("publish: %w", context.DeadlineExceeded), false},
		{"a permanent error that wraps a cancellation", &sink.PermanentError{Sink: "k", EventID: "1", Err: context.Canceled}, false},
	} {
		if got := sink.IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// wrapVerdict says v and wraps err.
type wrapVerdict struct {
	v   verdict
	err error
}

func (w *wrapVerdict) Error() string   { return w.err.Error() }
func (w *wrapVerdict) Unwrap() error   { return w.err }
func (w *wrapVerdict) Permanent() bool { return w.v.Permanent() }

// A sink used on its own (without a fan-out) gets an Ack handle that tells
// its Observer; the fan-out's own handle is kept.
func TestWithDefaultsAck(t *testing.T) {
	t.Parallel()
	var acked []string
	obs := ackObserver(func(name string, e *event.Event) { acked = append(acked, name+":"+e.ID) })
	o := sink.Options{Name: "s", Observer: obs}.WithDefaults()
	if o.Logger == nil || o.Ack == nil {
		t.Fatal("WithDefaults left Logger or Ack nil")
	}
	o.Ack(&event.Event{ID: "1"})
	if fmt.Sprint(acked) != "[s:1]" {
		t.Errorf("observer saw %v, want [s:1]", acked)
	}
	if o := (sink.Options{}).WithDefaults(); o.Observer == nil || o.Ack == nil {
		t.Error("WithDefaults left Observer or Ack nil")
	} else {
		o.Ack(&event.Event{ID: "2"}) // must not panic
	}
	var own int
	o = sink.Options{Name: "s", Observer: obs, Ack: func(*event.Event) { own++ }}.WithDefaults()
	o.Ack(&event.Event{ID: "3"})
	if own != 1 || len(acked) != 1 {
		t.Errorf("WithDefaults replaced the handle it was given: own %d, observer %v", own, acked)
	}
}

type ackObserver func(string, *event.Event)

func (f ackObserver) Acked(name string, e *event.Event) { f(name, e) }
func (ackObserver) Retried(string, error)               {}
func (ackObserver) Duplicate(string, *event.Event)      {}
