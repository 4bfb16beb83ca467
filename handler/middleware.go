package handler

import (
	"context"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// PanicError is the error a handler's panic becomes under [Recover]: the
// attempt failed and is retried like any other failure.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("handler: panic: %v", p.Value) }

// Recover turns a panic in the handler into a *PanicError. Consumers and
// sinks always apply it outermost; use it yourself around handlers you
// call elsewhere.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, e cloudevents.Event) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next(ctx, e)
		}
	}
}

// Timeout bounds each attempt: the handler's ctx is done after d, and an
// attempt that returns after that fails with context.DeadlineExceeded (and
// is retried). A handler must watch ctx for this to cut it short; under an
// inbox, pgx does (the transaction is rolled back).
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, e cloudevents.Event) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next(ctx, e)
			if err == nil && ctx.Err() != nil {
				err = fmt.Errorf("handler: attempt took longer than %v: %w", d, ctx.Err())
			}
			return err
		}
	}
}

// TraceContext is the W3C trace context an event carried in its
// traceparent (and tracestate) extension, as the CloudEvents distributed
// tracing extension defines it.
type TraceContext struct {
	TraceID    [16]byte
	ParentID   [8]byte // the span that produced the event
	Flags      byte    // bit 0: sampled
	TraceState string  // the tracestate extension, as is
}

// Sampled reports the sampled flag.
func (t TraceContext) Sampled() bool { return t.Flags&1 == 1 }

// String returns the traceparent form "00-<trace id>-<parent id>-<flags>".
func (t TraceContext) String() string {
	return fmt.Sprintf("00-%x-%x-%02x", t.TraceID, t.ParentID, t.Flags)
}

type traceKey struct{}

// TraceFromContext returns the trace context [Trace] put in ctx. Bridge it
// to a tracer of your choice, e.g. with OpenTelemetry:
// trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(...)).
func TraceFromContext(ctx context.Context) (TraceContext, bool) {
	t, ok := ctx.Value(traceKey{}).(TraceContext)
	return t, ok
}

// ParseTraceparent parses a W3C traceparent value (version 00, or a later
// version's first four fields). An all-zero trace or parent id is invalid.
func ParseTraceparent(s string) (TraceContext, bool) {
	var t TraceContext
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || (parts[0] == "00" && len(parts) != 4) {
		return t, false
	}
	if len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return t, false
	}
	if _, err := hex.Decode(t.TraceID[:], []byte(parts[1])); err != nil || strings.ToLower(parts[1]) != parts[1] {
		return t, false
	}
	if _, err := hex.Decode(t.ParentID[:], []byte(parts[2])); err != nil || strings.ToLower(parts[2]) != parts[2] {
		return t, false
	}
	var f [1]byte
	if _, err := hex.Decode(f[:], []byte(parts[3])); err != nil {
		return t, false
	}
	t.Flags = f[0]
	if t.TraceID == ([16]byte{}) || t.ParentID == ([8]byte{}) {
		return t, false
	}
	return t, true
}

// Trace puts the event's traceparent extension, when valid, into the
// handler's ctx (see [TraceFromContext]). Consumers and sinks always apply
// it.
func Trace() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, e cloudevents.Event) error {
			return next(withTrace(ctx, &e), e)
		}
	}
}

func withTrace(ctx context.Context, e *cloudevents.Event) context.Context {
	tp, ok := e.Extensions()["traceparent"].(string)
	if !ok {
		return ctx
	}
	t, ok := ParseTraceparent(tp)
	if !ok {
		return ctx
	}
	t.TraceState, _ = e.Extensions()["tracestate"].(string)
	return context.WithValue(ctx, traceKey{}, t)
}
