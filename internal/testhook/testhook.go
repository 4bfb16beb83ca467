// Package testhook carries switches that only this module's tests may set
// into the application, through the context given to outboxcdc.New, so that
// none of them is part of the public API. Production code never sets them.
package testhook

import "context"

// Hooks are the test-only switches. The zero value is production behaviour.
type Hooks struct {
	// NoKeepaliveFollow stops the confirmed position from following the
	// server's keepalive WAL end while nothing is in flight, so that a test
	// can see WAL pinned (see replication.Config).
	NoKeepaliveFollow bool
}

type key struct{}

// With returns ctx carrying h.
func With(ctx context.Context, h Hooks) context.Context { return context.WithValue(ctx, key{}, h) }

// From returns the Hooks ctx carries; the zero Hooks when none.
func From(ctx context.Context) Hooks {
	h, _ := ctx.Value(key{}).(Hooks)
	return h
}
