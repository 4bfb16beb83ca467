// Package pipeline joins the decoder, the checkpoint and the sink fan-out into
// the replication.Consumer that the replication stream feeds.
package pipeline

import (
	"context"
	"errors"
	"math/bits"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/fanout"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
)

// flushEvery is how many events of one transaction are queued before the sinks
// are woken without waiting for the commit.
const flushEvery = 256

// Hooks observe the pipeline; every field is optional and must not block.
type Hooks struct {
	// Decoded is called for each event with the number of sinks it is
	// routed to (not counting those that acknowledged it before a restart),
	// before any of them sees it.
	Decoded func(e *event.Event, routes int)
	// Invalid, if set, takes a row or message that cannot become an event
	// (the dead-letter policy) and returns once it is stored; the stream
	// then goes on. An error stops the stream. Without it such a row stops
	// the stream.
	Invalid func(*decoder.Error) error
	// Verify, if set, is called at the end of Drain, before the stream
	// confirms its final position: it may raise the checkpoint's Bound (the
	// catalog verifying publication membership). Its error is ignored: the
	// bound then stays where it was.
	Verify func(context.Context) error
}

// Pipeline implements replication.Consumer and decoder.Handler. It is used by
// the stream's goroutine only, except Checkpoint, which is safe for
// concurrent use.
type Pipeline struct {
	dec   *decoder.Decoder
	cp    *checkpoint.Checkpoint
	fan   *fanout.Fanout
	hooks Hooks

	tx        *checkpoint.Tx
	unflushed int
}

var (
	_ replication.Consumer = (*Pipeline)(nil)
	_ decoder.Handler      = (*Pipeline)(nil)
)

// New returns a Pipeline.
func New(dec *decoder.Decoder, cp *checkpoint.Checkpoint, fan *fanout.Fanout, hooks Hooks) *Pipeline {
	return &Pipeline{dec: dec, cp: cp, fan: fan, hooks: hooks}
}

// Checkpoint returns the pipeline's checkpoint.
func (p *Pipeline) Checkpoint() *checkpoint.Checkpoint { return p.cp }

// WAL implements replication.Consumer.
func (p *Pipeline) WAL(walStart uint64, data []byte) error {
	err := p.dec.Decode(walStart, data, p)
	var derr *decoder.Error
	if err != nil && p.hooks.Invalid != nil && errors.As(err, &derr) {
		// The row is stored before the reader moves on, so the slot cannot
		// pass its transaction before it is safe.
		return p.hooks.Invalid(derr)
	}
	return err
}

// Keepalive implements replication.Consumer.
func (p *Pipeline) Keepalive(walEnd uint64) { p.cp.Keepalive(walEnd) }

// Safe implements replication.Consumer.
func (p *Pipeline) Safe() uint64 { return p.cp.Safe() }

// Wait implements replication.Consumer. Before reporting a full window it
// hands every queued event to the sinks, or the window could never drain.
func (p *Pipeline) Wait() <-chan struct{} {
	ch := p.cp.Wait()
	if ch != nil && p.unflushed > 0 {
		p.flush()
	}
	return ch
}

// Drain implements replication.Consumer.
func (p *Pipeline) Drain(ctx context.Context) error {
	p.flush()
	p.tx = nil
	p.cp.DropOpen()
	p.dec.Reset()
	_, err := p.cp.Drain(ctx)
	if p.hooks.Verify != nil {
		p.hooks.Verify(ctx)
	}
	return err
}

// Begin implements decoder.Handler.
func (p *Pipeline) Begin(_ uint64, commitTime time.Time) error {
	p.tx = p.cp.BeginAt(commitTime)
	return nil
}

// Event implements decoder.Handler.
func (p *Pipeline) Event(e *event.Event) error {
	routes := p.cp.Add(p.tx, e, p.fan.Route(e))
	if p.hooks.Decoded != nil {
		p.hooks.Decoded(e, bits.OnesCount64(routes))
	}
	if routes != 0 {
		p.fan.Add(e, routes)
		if p.unflushed++; p.unflushed >= flushEvery {
			p.flush()
		}
	}
	return nil
}

// Commit implements decoder.Handler.
func (p *Pipeline) Commit(commitLSN, endLSN uint64, commitTime time.Time) error {
	p.cp.Commit(p.tx, commitLSN, endLSN, commitTime)
	p.tx = nil
	p.flush()
	return nil
}

func (p *Pipeline) flush() {
	p.unflushed = 0
	p.fan.Flush()
}
