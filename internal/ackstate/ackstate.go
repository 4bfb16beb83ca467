// Package ackstate is the acknowledgement state that every event carries for
// the checkpoint, kept out of the event's public API.
//
// Package event embeds a [State] in each Event, unexported, and registers
// [Of] at init; only packages of this module can reach it, and only the
// checkpoint writes it. An event's State costs no allocation and its
// acknowledgement path no lock: one atomic operation per acknowledgement,
// as before it was moved here.
package ackstate

import "sync/atomic"

// State is one event's acknowledgement state.
type State struct {
	// owed has bit i set while the sink with tracker bit i owes the event
	// its acknowledgement: set by Route before the event reaches any sink,
	// cleared by the sink's first acknowledgement (Ack).
	owed uint64
	// Owner is the tracker's record of the event's transaction. It is set
	// before the event reaches any sink and not changed after.
	Owner any
}

// Route records that the sinks in routes owe the event, and owner as its
// transaction. It must be called before the event reaches any sink (which
// happens after a lock or channel hand-over), and only then: it is a plain
// write, the one the hot path can afford.
func (s *State) Route(routes uint64, owner any) {
	s.owed = routes
	s.Owner = owner
}

// Ack clears bit and returns the sinks that owed the event before. Safe for
// concurrent use.
func (s *State) Ack(bit uint64) (before uint64) { return atomic.AndUint64(&s.owed, ^bit) }

// Owed returns the sinks that owe the event now. Safe for concurrent use.
func (s *State) Owed() uint64 { return atomic.LoadUint64(&s.owed) }

var of func(any) *State

// Register makes f the accessor Of uses. Package event calls it once, at
// init; a second call panics.
func Register(f func(any) *State) {
	if of != nil {
		panic("ackstate: Register called twice")
	}
	of = f
}

// Of returns the State of e, an *event.Event.
func Of(e any) *State { return of(e) }
