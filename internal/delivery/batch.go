package delivery

import "github.com/outbox-cdc/outbox-cdc/event"

// Ticket identifies one send of one message: settlements that carry an
// older ticket (the message was sent again since) are ignored.
type Ticket struct {
	seq uint64
	gen uint32
}

// Batch is the run of messages one Adapter.Send call sends, in window
// order. It is valid during that call; Ticket and Settle results outlive
// it.
type Batch[M any] struct {
	e    *Engine[M]
	from uint64
	n    int
	prev *M
}

func (b *Batch[M]) slot(i int) *slot[M] { return &b.e.ring[(b.from+uint64(i))&b.e.mask] }

// Len returns the number of messages.
func (b *Batch[M]) Len() int { return b.n }

// Msg returns message i.
func (b *Batch[M]) Msg(i int) *M { return b.slot(i).m }

// Event returns the event of message i.
func (b *Batch[M]) Event(i int) *event.Event { return b.slot(i).e }

// Ticket returns the ticket of message i's send, for a later Engine.Settle.
func (b *Batch[M]) Ticket(i int) Ticket {
	s := b.slot(i)
	return Ticket{seq: s.seq, gen: s.gen}
}

// Prev returns, in an ordered engine, the message right before the first of
// the batch when it is still in the window (stored, or sent and not
// settled), else nil: then it was the last one acknowledged, or there was
// none.
func (b *Batch[M]) Prev() *M { return b.prev }

// Settle settles message i (see Engine.Settle).
func (b *Batch[M]) Settle(i int, err error) { b.e.Settle(b.Ticket(i), err) }

// Stored settles message i as stored with a note (see Engine.Stored).
func (b *Batch[M]) Stored(i int, note uint64) { b.e.Stored(b.Ticket(i), note) }

// Pending is the window a Recoverer looks at: every message taken by
// Publish from the oldest unacknowledged one on, in window order, each now
// stored, failed, or queued (not sent since the last resend began). Nothing
// of it is in flight. It is valid during the Recover call.
type Pending[M any] struct {
	e    *Engine[M]
	from uint64
	n    int
}

func (p *Pending[M]) slot(i int) *slot[M] { return &p.e.ring[(p.from+uint64(i))&p.e.mask] }

// Len returns the number of messages.
func (p *Pending[M]) Len() int { return p.n }

// Msg returns message i.
func (p *Pending[M]) Msg(i int) *M { return p.slot(i).m }

// Event returns the event of message i.
func (p *Pending[M]) Event(i int) *event.Event { return p.slot(i).e }

// Stored reports whether message i is known to be stored.
func (p *Pending[M]) Stored(i int) bool {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	return p.slot(i).state == slotStored
}

// MarkStored records that the broker holds message i (learnt from a
// failure, e.g. a refusal naming it as the destination's last message): it
// is acknowledged in its turn, with note for the Deliverer, and not sent
// again.
func (p *Pending[M]) MarkStored(i int, note uint64) {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	if s := p.slot(i); s.state == slotFailed || s.state == slotQueued {
		s.state, s.note, s.err = slotStored, note, nil
	}
}
